//! karp-read: subscribe to a live broadcast with moq-karp 0.10's library and write it to a
//! file as fragmented MP4 (init segment, then a fragment per frame), for ffprobe. Not to
//! stdout: moq-karp 0.10 prints each catalog group it reads there.
//!
//! moq-karp does the protocol and the media layout (announcements under the name, the
//! catalog track, the rendition tracks, frame timestamps); our moq-media only writes the
//! boxes, because moq-karp 0.10 has no working export.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncWriteExt;
use url::Url;

#[derive(Parser)]
struct Args {
    /// The relay's URL (https://, WebTransport; moq-native 0.5 also takes moqf://).
    url: Url,
    /// The broadcast's name (its parts separated by '/'); the live id below it is found from
    /// the announcements.
    name: String,
    /// The MP4 file to write.
    output: std::path::PathBuf,
    /// How long to read, in seconds, after the catalog arrives.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[command(flatten)]
    tls: moq_native::tls::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tls = args.tls.load()?;
    let quic = moq_native::quic::Endpoint::new(moq_native::quic::Config {
        bind: "[::]:0".parse().unwrap(),
        tls,
    })?;
    let session = quic.client.connect(&args.url).await?;
    let session = moq_transfork::Session::connect(session).await?;

    let mut path = moq_transfork::Path::new();
    for part in args.name.split('/').filter(|p| !p.is_empty()) {
        path = path.push(part);
    }
    let mut announced = moq_karp::BroadcastAnnounced::new(session.clone(), path);
    let mut broadcast = tokio::time::timeout(Duration::from_secs(10), announced.broadcast())
        .await
        .context("no broadcast announced within 10 s")?
        .context("announcements ended")?;
    let catalog = tokio::time::timeout(Duration::from_secs(10), broadcast.catalog())
        .await
        .context("no catalog within 10 s")??
        .context("the catalog track ended")?;
    let json = catalog.to_string()?;
    eprintln!("karp-read: catalog {json}");

    // moq-karp's catalog, read by moq-karp, handed to our muxer as the JSON it printed.
    let ours = moq_media::Catalog::from_json(json.as_bytes())?;
    let mut muxer = moq_media::cmaf::Muxer::new(&ours)?;
    let mut out = tokio::fs::File::create(&args.output)
        .await
        .with_context(|| format!("creating {}", args.output.display()))?;
    out.write_all(&muxer.init_segment()).await?;

    // One reader per rendition, all feeding one writer in arrival order.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let tracks = catalog
        .video
        .iter()
        .map(|v| v.track.clone())
        .chain(catalog.audio.iter().map(|a| a.track.clone()));
    for track in tracks {
        let index = ours
            .tracks()
            .position(|t| t.name == track.name)
            .context("a rendition our catalog does not have")?;
        let mut consumer = broadcast.track(&track);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = consumer.read().await {
                if tx.send((index, frame)).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let mut counts = vec![(0u64, 0u64); ours.tracks().count()];
    let deadline = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            next = rx.recv() => {
                let Some((index, frame)) = next else { break };
                let timestamp = moq_media::Timestamp::from_micros(frame.timestamp.as_micros())
                    .context("timestamp out of range")?;
                let frame = moq_media::Frame {
                    timestamp,
                    keyframe: frame.keyframe,
                    payload: frame.payload,
                };
                // A reader joins mid-group: fragments start at the first keyframe.
                if counts[index].0 == 0 && !frame.keyframe {
                    continue;
                }
                counts[index].0 += 1;
                counts[index].1 += frame.keyframe as u64;
                out.write_all(&muxer.fragment(index, &frame)?).await?;
            }
        }
    }
    out.flush().await?;
    for (track, (frames, keyframes)) in ours.tracks().zip(&counts) {
        eprintln!(
            "karp-read: {} {frames} frames, {keyframes} keyframes",
            track.name
        );
    }
    Ok(())
}
