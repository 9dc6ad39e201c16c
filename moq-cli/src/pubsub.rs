//! `moq pub` (stdin to a track) and `moq sub` (a track to stdout).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use moq_model::{GroupProducer, Path, Track, TrackConsumer};
use moq_session::Session;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::client::{session_error, track_error};

/// How `moq pub` cuts its input into frames and groups.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    /// `None`: a frame per line; `Some(n)`: frames of `n` bytes.
    pub frame_size: Option<usize>,
    /// End a group after this many frames (0: no limit).
    pub group_frames: usize,
}

/// Reads frames from `input` into `track` until EOF, publishes it on `session`, then waits
/// (at most `linger`, at least `settle`) until every subscriber has been served.
pub(crate) async fn publish(
    session: &Session,
    path: Path,
    input: impl AsyncRead + Unpin,
    framing: Framing,
    linger_for: Duration,
    settle: Duration,
) -> anyhow::Result<()> {
    let (mut track, consumer) = Track::new(path).produce();
    session
        .publish(consumer)
        .map_err(|e| anyhow!("cannot publish: {e}"))?;
    let mut input = BufReader::new(input);
    let mut group: Option<GroupProducer> = None;
    let mut frames = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::select! {
            read = read_frame(&mut input, &mut line, framing.frame_size) => read.context("reading stdin")?,
            err = session.closed() => return Err(anyhow!("the session ended: {}", session_error(&err))),
        };
        if !read {
            break;
        }
        // Line mode: an empty line ends the current group and is not a frame.
        if framing.frame_size.is_none() && line.is_empty() {
            if let Some(group) = group.take() {
                group.finish();
            }
            continue;
        }
        let current = group.get_or_insert_with(|| track.append_group());
        current
            .write_frame(Bytes::copy_from_slice(&line))
            .map_err(|e| anyhow!("writing a frame: {e}"))?;
        frames += 1;
        if framing.group_frames > 0
            && current.frame_count() >= framing.group_frames
            && let Some(group) = group.take()
        {
            group.finish();
        }
    }
    if let Some(group) = group.take() {
        group.finish();
    }
    track.finish();
    tracing::info!(frames, "end of input");
    linger(session, linger_for, settle).await
}

/// Lets the subscriptions we serve deliver what is cached and end (§4.4: FIN after the
/// track ended and its group streams are done), for at most `linger`. Waits at least
/// `settle` too: a relay that refuses our announcement closes the session about a round
/// trip after it hears it.
pub(crate) async fn linger(
    session: &Session,
    linger: Duration,
    settle: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + linger.max(settle);
    while Instant::now() < deadline {
        let stats = session.stats();
        if stats.serving == 0 && stats.group_streams_out == 0 && started.elapsed() >= settle {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            err = session.closed() => {
                return Err(anyhow!("the session ended: {}", session_error(&err)));
            }
        }
    }
    Ok(())
}

/// One frame into `out`: a line without its `\n`, or up to `size` bytes. False at EOF
/// (with nothing read).
async fn read_frame<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
    out: &mut Vec<u8>,
    size: Option<usize>,
) -> std::io::Result<bool> {
    match size {
        None => {
            let n = input.read_until(b'\n', out).await?;
            if out.last() == Some(&b'\n') {
                out.pop();
            }
            Ok(n > 0)
        }
        Some(size) => {
            out.resize(size, 0);
            let mut filled = 0;
            while filled < size {
                let n = input.read(&mut out[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            out.truncate(filled);
            Ok(filled > 0)
        }
    }
}

/// How `moq sub` writes frames.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    /// Write frames back to back, with no separator.
    pub raw: bool,
    /// Write an empty line between groups (line mode only).
    pub groups: bool,
}

/// Writes the frames of `track` to stdout as they arrive, until the track ends.
pub(crate) async fn subscribe(session: &Session, path: Path, output: Output) -> anyhow::Result<()> {
    let track = session.subscribe(Track::new(path.clone()));
    let mut stdout = tokio::io::stdout();
    let result = tokio::select! {
        result = copy(track, &mut stdout, output) => result,
        err = session.closed() => Err(Failure::Session(session_error(&err))),
    };
    match result {
        Ok(()) => Ok(()),
        Err(Failure::Track(err)) => Err(track_error(err, &path)),
        Err(Failure::Session(err)) => Err(anyhow!("the session ended: {err}")),
        // The reader went away (e.g. `| head`): nothing more to do.
        Err(Failure::Output(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(Failure::Output(err)) => Err(anyhow!("writing stdout: {err}")),
    }
}

enum Failure {
    Track(moq_model::Error),
    Session(String),
    Output(std::io::Error),
}

async fn copy(
    mut track: TrackConsumer,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    output: Output,
) -> Result<(), Failure> {
    let mut first = true;
    while let Some(mut group) = track.next_group().await.map_err(Failure::Track)? {
        if output.groups && !output.raw && !first {
            out.write_all(b"\n").await.map_err(Failure::Output)?;
        }
        first = false;
        loop {
            match group.read_frame().await {
                Ok(Some(frame)) => {
                    out.write_all(&frame).await.map_err(Failure::Output)?;
                    if !output.raw {
                        out.write_all(b"\n").await.map_err(Failure::Output)?;
                    }
                    out.flush().await.map_err(Failure::Output)?;
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(sequence = group.sequence(), %err, "group lost");
                    break;
                }
            }
        }
    }
    Ok(())
}
