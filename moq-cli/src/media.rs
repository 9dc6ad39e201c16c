//! `moq media publish` (fragmented MP4 on stdin to a live broadcast), `moq media subscribe`
//! (the live broadcast to fragmented MP4 on stdout) and `moq media info` (its catalog), in
//! the format of moq-karp 0.10 (`docs/media.md`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path as FsPath;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use moq_media::cmaf::{Import, Muxer};
use moq_media::{
    BroadcastConsumer, BroadcastProducer, CLOCK_TRACK, Catalog, LiveBroadcast, broadcast_id,
    broadcast_path, clock_track,
};
use moq_model::{AnnouncedProducer, Broadcast, Path};
use moq_session::Session;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::session_error;
use crate::pubsub::linger;

/// `--latency-log FILE`: a line per frame read from stdin, `TRACK TIMESTAMP_US WALL_US`
/// (space-separated; WALL_US the wall clock when the read that completed the frame
/// returned, in microseconds since the Unix epoch), after a `#` header line.
pub(crate) struct LatencyLog {
    out: BufWriter<File>,
}

impl LatencyLog {
    /// Creates (or truncates) `file` and writes the header line.
    pub(crate) fn create(file: &FsPath) -> anyhow::Result<Self> {
        let mut out = BufWriter::new(
            File::create(file).with_context(|| format!("creating {}", file.display()))?,
        );
        writeln!(out, "# track timestamp_us wall_us")?;
        Ok(Self { out })
    }
}

/// When the publisher read each frame, for the clock track and the `--latency-log`: the
/// import reports the frames each read completed ([`Import::push_each`]).
struct FrameTimes {
    /// The frames the current read completed: track (its place in the catalog), µs.
    read: Vec<(usize, u64)>,
    log: Option<LatencyLog>,
    clock: moq_model::TrackProducer,
    /// The smallest wall clock minus media time of the clock's rendition so far (µs).
    best: Option<i128>,
}

impl FrameTimes {
    fn new(clock: moq_model::TrackProducer, log: Option<LatencyLog>) -> Self {
        Self {
            read: Vec::new(),
            log,
            clock,
            best: None,
        }
    }

    /// Takes the frames of the read that returned at `wall` (`read`, filled by the import).
    fn record(&mut self, wall: SystemTime, catalog: Option<&Catalog>) -> anyhow::Result<()> {
        let wall = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        for (track, micros) in self.read.drain(..) {
            // The clock follows the catalog's first rendition (video first): the one a
            // player shows the latency of. A frame read late only adds to the latency, so
            // the reference is the frame read earliest for its timestamp; a new one is
            // published when it is earlier by a millisecond or more.
            let offset = wall as i128 - micros as i128;
            if track == 0 && self.best.is_none_or(|best| offset <= best - 1000) {
                self.best = Some(offset);
                let mut group = self.clock.append_group();
                group.write_frame(format!(r#"{{"timestamp":{micros},"wall":{wall}}}"#))?;
                group.finish();
            }
            if let Some(log) = &mut self.log {
                // The catalog exists before any frame; `track` indexes its tracks.
                let name = catalog
                    .and_then(|catalog| catalog.tracks().nth(track))
                    .map_or("?", |info| info.name.as_str());
                writeln!(log.out, "{name} {micros} {wall}")?;
            }
        }
        if let Some(log) = &mut self.log {
            // Flushed per read, so that a publisher that is killed leaves a usable log.
            log.out.flush().context("writing the latency log")?;
        }
        Ok(())
    }
}

/// Publishes the fragmented MP4 read from `input` as a live broadcast under `name` (at
/// `name/<id>`, the id the start time in milliseconds), until the input ends; then waits as
/// `moq pub` does for the subscribers to be served. Returns the broadcast's path. With a
/// `log`, every frame's read time is written to it ([`LatencyLog`]).
pub(crate) async fn publish(
    session: &Session,
    name: Path,
    mut input: impl AsyncRead + Unpin,
    wait: Duration,
    settle: Duration,
    log: Option<LatencyLog>,
) -> anyhow::Result<Path> {
    let path = broadcast_path(&name, &broadcast_id(SystemTime::now()));
    let (producer, consumer) = Broadcast::new(path.clone()).produce();
    let producer = BroadcastProducer::new(producer).map_err(|e| anyhow!("{e}"))?;
    session
        .publish_broadcast(consumer)
        .map_err(|e| anyhow!("cannot publish: {e}"))?;
    tracing::info!(%path, "publishing");
    // Each rendition's path is announced too, as moq-karp's publisher does: relays that
    // route by exact path (the published moq-relay 0.6) find a track only if its own path
    // was announced. The paths end with `tracks` (dropped on return).
    let mut tracks = AnnouncedProducer::new();
    session.announce(tracks.source());
    // The clock track (moq_media::CLOCK_TRACK): when frames were read, for the viewers.
    let (clock, clock_consumer) = clock_track(&path).produce();
    session
        .publish(clock_consumer)
        .map_err(|e| anyhow!("cannot publish the clock track: {e}"))?;
    tracks.announce(path.push(CLOCK_TRACK));
    let mut times = FrameTimes::new(clock, log);
    let mut import = Import::new(producer);
    let mut buf = vec![0; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = input.read(&mut buf) => read.context("reading stdin")?,
            err = session.closed() => return Err(anyhow!("the session ended: {}", session_error(&err))),
        };
        if read == 0 {
            break;
        }
        // The wall clock as soon as the bytes are ours, before the import publishes them.
        let wall = SystemTime::now();
        import
            .push_each(&buf[..read], |track, frame| {
                times.read.push((track, frame.timestamp.as_micros()));
            })
            .map_err(|e| anyhow!("the input is not fragmented MP4 we can read: {e}"))?;
        for info in import.catalog().into_iter().flat_map(Catalog::tracks) {
            // False (nothing sent) for a path announced already.
            tracks.announce(path.push(info.name.as_str()));
        }
        times
            .record(wall, import.catalog())
            .context("timing the frames read")?;
    }
    // The tracks end here; the broadcast stays announced until we return.
    let producer = import
        .finish()
        .map_err(|e| anyhow!("the input ended badly: {e}"))?;
    linger(session, wait, settle).await?;
    drop(producer);
    Ok(path)
}

/// The live broadcast under `name`: the one with the largest id among those announced,
/// waiting at most `timeout` for one.
pub(crate) async fn find(
    session: &Session,
    name: &Path,
    timeout: Duration,
) -> anyhow::Result<Path> {
    let mut announced = session.announced(name.clone());
    let mut live = LiveBroadcast::new(name.clone());
    let first = async {
        while let Some(event) = announced.next().await? {
            live.update(&event);
            if live.live().is_some() {
                return Ok(());
            }
        }
        Err(anyhow!("the announcements under {name} ended"))
    };
    tokio::time::timeout(timeout, first)
        .await
        .map_err(|_| anyhow!("no broadcast announced under {name} within {timeout:?}"))??;
    // The rest of what is announced now (a newer id may follow an older one at once).
    while let Ok(Ok(Some(event))) =
        tokio::time::timeout(Duration::from_millis(50), announced.next()).await
    {
        live.update(&event);
    }
    live.live()
        .ok_or_else(|| anyhow!("no broadcast announced under {name}"))
}

/// The broadcast at `path`, subscribed through `session`, and its first catalog.
async fn open(session: &Session, path: Path) -> anyhow::Result<(BroadcastConsumer, Catalog)> {
    let subscriber = session.clone();
    let mut broadcast =
        BroadcastConsumer::new(path.clone(), move |track| subscriber.subscribe(track));
    let catalog = broadcast
        .catalog()
        .await
        .map_err(|e| anyhow!("reading the catalog of {path}: {e}"))?
        .ok_or_else(|| anyhow!("{path} ended before its catalog"))?;
    Ok((broadcast, catalog))
}

/// Writes the broadcast at `path` to `output` as fragmented MP4: the init segment from its
/// catalog, then a fragment per frame, until its tracks end.
pub(crate) async fn subscribe(
    session: &Session,
    path: Path,
    mut output: impl AsyncWrite + Unpin,
) -> anyhow::Result<()> {
    let (broadcast, catalog) = open(session, path).await?;
    let mut muxer = Muxer::new(&catalog).map_err(|e| anyhow!("{e}"))?;
    output.write_all(&muxer.init_segment()).await?;
    let mut tracks = broadcast.tracks(&catalog);
    while let Some((track, frame)) = tracks.read().await.map_err(|e| anyhow!("{e}"))? {
        let fragment = muxer.fragment(track, &frame).map_err(|e| anyhow!("{e}"))?;
        output.write_all(&fragment).await?;
    }
    output.flush().await?;
    Ok(())
}

/// The catalog of the broadcast at `path`, as indented JSON.
pub(crate) async fn info(session: &Session, path: Path) -> anyhow::Result<String> {
    let (_, catalog) = open(session, path).await?;
    let value: serde_json::Value = serde_json::from_str(&catalog.to_json())?;
    Ok(serde_json::to_string_pretty(&value)?)
}
