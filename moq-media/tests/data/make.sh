#!/usr/bin/env bash
# Regenerates the fragmented MP4 fixtures in this directory with ffmpeg (5.1 made the
# committed ones; another version writes other bytes, and the expected values in
# moq-media/tests/integration/cmaf.rs may then need updating). Run from anywhere: bash make.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v ffmpeg >/dev/null || { echo "make.sh: ffmpeg is needed (Debian: apt-get install ffmpeg)" >&2; exit 1; }

# What the importer is built for: one fragment per frame, the init segment first.
cmaf=(-f mp4 -movflags cmaf+separate_moof+delay_moov+skip_trailer+frag_every_frame)
video=(-f lavfi -i testsrc=size=160x120:rate=15)
tone=(-f lavfi -i sine=frequency=440:sample_rate=48000)
quiet=(-hide_banner -loglevel error -y)

# H.264 Main (no B-frames, a keyframe every second) and mono AAC-LC, 3 s. Main, not High: the
# avcC of a High profile has extension fields that moq-karp 0.10's box parser (mp4-atom 0.3)
# refuses, and tests/integration/karp.rs compares our import of this file with what karp's would make.
ffmpeg "${quiet[@]}" "${video[@]}" "${tone[@]}" -t 3 \
  -c:v libx264 -preset veryfast -profile:v main -g 15 -bf 0 -pix_fmt yuv420p -b:v 100k \
  -c:a aac -b:a 32k -ac 1 "${cmaf[@]}" h264_aac.mp4
# H.264 with B-frames (composition offsets), 2 s.
ffmpeg "${quiet[@]}" "${video[@]}" -t 2 \
  -c:v libx264 -preset veryfast -g 10 -bf 2 -pix_fmt yuv420p -b:v 100k "${cmaf[@]}" h264_bframes.mp4
# H.265 Main in an hvc1 sample entry, 2 s.
ffmpeg "${quiet[@]}" "${video[@]}" -t 2 \
  -c:v libx265 -preset ultrafast -x265-params keyint=15:bframes=0:log-level=error \
  -pix_fmt yuv420p -b:v 100k -tag:v hvc1 "${cmaf[@]}" hevc.mp4
# VP9 profile 0 and stereo Opus, 2 s.
ffmpeg "${quiet[@]}" "${video[@]}" "${tone[@]}" -t 2 \
  -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 15 -pix_fmt yuv420p -b:v 100k \
  -c:a libopus -b:a 24k -ac 2 "${cmaf[@]}" vp9_opus.mp4
# AV1 Main, 2 s.
ffmpeg "${quiet[@]}" "${video[@]}" -t 2 \
  -c:v libaom-av1 -cpu-used 8 -usage realtime -g 15 -pix_fmt yuv420p -b:v 100k "${cmaf[@]}" av1.mp4
