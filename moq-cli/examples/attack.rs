//! A hostile client, to check a relay's limits under load (scripts/perf/soak.sh runs it in
//! a loop beside `moq bench`). Only against relays you run yourself.
//!
//! ```sh
//! cargo run --release -p moq-cli --example attack -- URL paths 65000 --hold 5
//! cargo run --release -p moq-cli --example attack -- URL sessions 1000 --hold 5
//! cargo run --release -p moq-cli --example attack -- URL endless-group --hold 10
//! ```
//!
//! * `paths N`: one session announces N paths, holds them, leaves.
//! * `sessions N`: N idle sessions, held, then closed.
//! * `endless-group`: publishes a track whose one group never ends, in 1 MiB frames, with a
//!   subscriber that reads it and one that never reads.
//!
//! Each prints one line: what it did and what the relay answered.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use moq_model::{AnnouncedProducer, Path, Track};
use moq_session::Session;
use moq_transport_quinn::{Client, ClientConfig, Trust};

#[derive(Parser)]
struct Args {
    /// The relay: moqf://HOST:PORT/ or https://HOST:PORT/.
    url: String,
    #[command(subcommand)]
    attack: Attack,
    /// Seconds to hold what was opened.
    #[arg(long, default_value_t = 5.0, global = true)]
    hold: f64,
}

#[derive(Subcommand)]
enum Attack {
    /// Announce this many paths from one session.
    Paths { count: usize },
    /// Open this many idle sessions.
    Sessions { count: usize },
    /// A group that never ends, in 1 MiB frames.
    EndlessGroup,
}

async fn connect(client: &Client, url: &str) -> anyhow::Result<Session> {
    let conn = client.connect(url).await?;
    let (session, driver) = Session::connect(conn).await?;
    tokio::spawn(driver);
    Ok(session)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hold = Duration::from_secs_f64(args.hold);
    let client = Client::new(
        ClientConfig::default()
            .with_bind("127.0.0.1:0".parse()?)
            .with_trust(Trust::DangerousDisableVerify),
    )?;
    let started = Instant::now();
    match args.attack {
        Attack::Paths { count } => {
            let session = connect(&client, &args.url).await?;
            let mut paths = AnnouncedProducer::new();
            for i in 0..count {
                paths.announce(Path::from(["attack".to_string(), format!("{i}")]));
            }
            session.announce(paths.consume(Path::empty()));
            let end = tokio::select! {
                () = tokio::time::sleep(hold) => "held".to_string(),
                err = session.closed() => format!("closed: {err}"),
            };
            session.close(moq_proto::ErrorCode::CANCEL);
            println!("paths {count}: {end} after {:?}", started.elapsed());
        }
        Attack::Sessions { count } => {
            let mut sessions = Vec::new();
            let mut refused = 0;
            let mut last_refusal = String::new();
            for _ in 0..count {
                match connect(&client, &args.url).await {
                    Ok(session) => sessions.push(session),
                    Err(err) => {
                        refused += 1;
                        last_refusal = err.to_string();
                    }
                }
            }
            tokio::time::sleep(hold).await;
            for session in &sessions {
                session.close(moq_proto::ErrorCode::CANCEL);
            }
            println!(
                "sessions {count}: {} open, {refused} refused{}",
                sessions.len(),
                if refused > 0 {
                    format!(" ({last_refusal})")
                } else {
                    String::new()
                }
            );
        }
        Attack::EndlessGroup => {
            let publisher = connect(&client, &args.url).await?;
            let path = Path::from(["attack", "endless"]);
            let (mut track, consumer) = Track::new(path.clone()).produce();
            publisher.publish(consumer)?;
            track.append_group().write_frame("start")?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let reader = connect(&client, &args.url).await?;
            let staller = connect(&client, &args.url).await?;
            let mut read = reader.subscribe(Track::new(path.clone()));
            let _stalled = staller.subscribe(Track::new(path));
            let reading = tokio::spawn(async move {
                let mut bytes = 0usize;
                let mut ended = String::from("still open");
                while let Ok(Some(mut group)) = read.next_group().await {
                    loop {
                        match group.read_frame().await {
                            Ok(Some(frame)) => bytes += frame.len(),
                            Ok(None) => break,
                            Err(err) => {
                                ended = format!("ended with {err}");
                                break;
                            }
                        }
                    }
                }
                (bytes, ended)
            });
            let mut group = track.append_group();
            let mut written = 0usize;
            let deadline = Instant::now() + hold;
            while Instant::now() < deadline {
                if group.write_frame(vec![0u8; 1 << 20]).is_err() {
                    break;
                }
                written += 1 << 20;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            drop(group);
            for session in [&publisher, &reader, &staller] {
                session.close(moq_proto::ErrorCode::CANCEL);
            }
            let (read, ended) = tokio::time::timeout(Duration::from_secs(5), reading)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or((0, "unknown".into()));
            println!(
                "endless group: {} MiB written, {} MiB read, the group {ended}",
                written >> 20,
                read >> 20
            );
        }
    }
    client.close();
    tokio::time::timeout(Duration::from_secs(2), client.wait_idle())
        .await
        .ok();
    Ok(())
}
