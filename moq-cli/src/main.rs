//! `moq`: publish stdin to a track, subscribe to a track, the clock, a wire decoder and a
//! one-process demo, for MoQ Transfork (`moqf-02`). See `docs/cli.md`.

mod bench;
mod client;
mod clock;
mod decode;
mod demo;
mod media;
mod pubsub;
mod token;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::client::{ClientArgs, parse_path};

/// MoQ Transfork (moqf-02) from the command line.
///
/// URLs: moqf://HOST:PORT/ROOT (raw QUIC) or https://HOST:PORT/ROOT (WebTransport). The
/// path is the session's root (track paths are relative to it); an access token goes in
/// `?jwt=TOKEN`, or in --jwt / MOQ_JWT.
#[derive(Parser, Debug)]
#[command(name = "moq", version)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,

    /// More logging on stderr (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish stdin as a track: a frame per line, a new group after an empty line.
    Pub {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The track's path, parts separated by `/` (repeatable: parts are appended).
        #[arg(long, required = true)]
        path: Vec<String>,
        /// Binary mode: frames of this many bytes (the last may be shorter) instead of lines.
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
        frame_size: Option<u64>,
        /// Also end a group after this many frames (0: only on empty lines / never).
        #[arg(long, default_value_t = 0, value_name = "N")]
        group_frames: usize,
        /// After end of input, wait at most this many seconds for subscribers to be served.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        linger: f64,
    },
    /// Subscribe to a track and write its frames to stdout: each frame then a newline.
    Sub {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The track's path, parts separated by `/` (repeatable: parts are appended).
        #[arg(long, required = true)]
        path: Vec<String>,
        /// Write frames back to back, without newlines.
        #[arg(long)]
        raw: bool,
        /// Write an empty line between groups.
        #[arg(long, conflicts_with = "raw")]
        groups: bool,
    },
    /// The clock of the published moq-clock tool: one group a minute, a frame a second.
    Clock {
        #[command(subcommand)]
        action: ClockAction,
    },
    /// Live media (fragmented MP4 in and out) in the format of moq-karp 0.10.
    Media {
        #[command(subcommand)]
        action: MediaAction,
    },
    /// Decode wire bytes into readable messages.
    Decode {
        /// The bytes as hex (spaces and `|` allowed); without it, raw bytes from --file or
        /// stdin.
        hex: Option<String>,
        /// Read raw bytes from this file (`-` for stdin).
        #[arg(long, conflicts_with = "hex")]
        file: Option<PathBuf>,
        /// What the bytes are.
        #[arg(long = "as", value_enum, default_value_t = decode::As::Auto)]
        as_: decode::As,
        /// With --as message: the message's name (e.g. Subscribe, Info, GroupDrop).
        #[arg(long)]
        message: Option<String>,
    },
    /// Load a relay with publishers and subscribers; report throughput, latency and CPU.
    Bench(bench::BenchArgs),
    /// Access tokens: make keys, sign tokens for a relay's --auth-key, check them.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// A relay, a clock publisher and a clock subscriber in one process on loopback.
    Demo {
        /// The relay's UDP address (and TCP, for the page over HTTP).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Serve the browser page from DIR (default: moq-web/www, if built).
        #[arg(long, value_name = "DIR")]
        web: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ClockAction {
    /// Publish the clock.
    Publish {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The track's path.
        #[arg(long, default_value = "clock")]
        path: Vec<String>,
    },
    /// Print the clock, a `YYYY-MM-DD HH:MM:SS` line a second.
    Subscribe {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The track's path.
        #[arg(long, default_value = "clock")]
        path: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum MediaAction {
    /// Publish fragmented MP4 read from stdin as a live broadcast at NAME/ID, e.g. from
    /// `ffmpeg ... -f mp4 -movflags cmaf+separate_moof+delay_moov+skip_trailer+frag_every_frame -`.
    Publish {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The broadcast's name, parts separated by `/`; the id (the start time in
        /// milliseconds) goes below it.
        #[arg(long, required = true)]
        path: Vec<String>,
        /// After end of input, wait at most this many seconds for subscribers to be served.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        linger: f64,
        /// Write a line per frame to FILE: its track, timestamp (µs) and the wall clock (µs
        /// since the Unix epoch) when its last byte was read from stdin (for latency
        /// measurements, docs/benchmarks.md).
        #[arg(long, value_name = "FILE")]
        latency_log: Option<PathBuf>,
    },
    /// Write the live broadcast under NAME to stdout as fragmented MP4 (ffplay and ffprobe
    /// read it), until it ends.
    Subscribe {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The broadcast's name (the live id below it is found from the announcements).
        #[arg(long, required = true)]
        path: Vec<String>,
        /// Wait at most this many seconds for a broadcast to be announced.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        wait: f64,
    },
    /// Print the catalog of the live broadcast under NAME (JSON).
    Info {
        /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport).
        url: String,
        /// The broadcast's name (the live id below it is found from the announcements).
        #[arg(long, required = true)]
        path: Vec<String>,
        /// Wait at most this many seconds for a broadcast to be announced.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        wait: f64,
    },
}

fn init_logging(verbose: u8) {
    // Quiet by default: stdout carries data and stderr one line per error; the
    // WebTransport library warns about ordinary closes, so it is kept to errors.
    let level = match verbose {
        0 => "warn,web_transport_quinn=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The WebTransport library logs each CONNECT request, token included, at debug: it stays
    // at info unless the filter names it.
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    let filter = EnvFilter::try_new(moq_transport_quinn::token_safe_log_filter(&spec))
        .unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("moq: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for tasks still blocked on stdin.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("{err:#}").replace('\n', " ");
            eprintln!("moq: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.client;
    match cli.command {
        Command::Pub {
            url,
            path,
            frame_size,
            group_frames,
            linger,
        } => {
            let path = parse_path(&path);
            let conn = client.connect(&url).await?;
            let framing = pubsub::Framing {
                frame_size: frame_size.map(|n| n as usize),
                group_frames,
            };
            let linger = Duration::from_secs_f64(linger.clamp(0.0, 3600.0));
            let input = tokio::io::stdin();
            let result = tokio::select! {
                result = pubsub::publish(&conn.session, path, input, framing, linger, conn.round_trips()) => result,
                _ = moq_relay::shutdown_signal() => Ok(()),
            };
            conn.finish().await;
            result
        }
        Command::Sub {
            url,
            path,
            raw,
            groups,
        } => {
            let path = parse_path(&path);
            let conn = client.connect(&url).await?;
            let output = pubsub::Output { raw, groups };
            let result = tokio::select! {
                result = pubsub::subscribe(&conn.session, path, output) => result,
                _ = moq_relay::shutdown_signal() => Ok(()),
            };
            conn.finish().await;
            result
        }
        Command::Clock { action } => {
            let (url, path, publish) = match action {
                ClockAction::Publish { url, path } => (url, path, true),
                ClockAction::Subscribe { url, path } => (url, path, false),
            };
            let path = parse_path(&path);
            let conn = client.connect(&url).await?;
            let result = tokio::select! {
                result = async {
                    if publish {
                        clock::publish(&conn.session, path).await
                    } else {
                        clock::subscribe(&conn.session, path).await
                    }
                } => result,
                _ = moq_relay::shutdown_signal() => Ok(()),
            };
            conn.finish().await;
            result
        }
        Command::Media { action } => {
            let (url, path) = match &action {
                MediaAction::Publish { url, path, .. }
                | MediaAction::Subscribe { url, path, .. }
                | MediaAction::Info { url, path, .. } => (url.clone(), parse_path(path)),
            };
            let conn = client.connect(&url).await?;
            let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 3600.0));
            let result = tokio::select! {
                result = async {
                    match action {
                        MediaAction::Publish { linger, latency_log, .. } => {
                            let stdin = tokio::io::stdin();
                            let log = latency_log.map(|file| media::LatencyLog::create(&file)).transpose()?;
                            media::publish(&conn.session, path, stdin, seconds(linger), conn.round_trips(), log)
                                .await
                                .map(drop)
                        }
                        MediaAction::Subscribe { wait, .. } => {
                            let live = media::find(&conn.session, &path, seconds(wait)).await?;
                            media::subscribe(&conn.session, live, tokio::io::stdout()).await
                        }
                        MediaAction::Info { wait, .. } => {
                            let live = media::find(&conn.session, &path, seconds(wait)).await?;
                            println!("{}", media::info(&conn.session, live).await?);
                            Ok(())
                        }
                    }
                } => result,
                _ = moq_relay::shutdown_signal() => Ok(()),
            };
            conn.finish().await;
            result
        }
        Command::Decode {
            hex,
            file,
            as_,
            message,
        } => {
            let bytes = match (hex, file) {
                (Some(hex), _) => decode::parse_hex(&hex).map_err(|e| anyhow!("{e}"))?,
                (None, Some(file)) if file.as_os_str() != "-" => {
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
                }
                (None, _) => {
                    let mut bytes = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut bytes)
                        .context("reading stdin")?;
                    bytes
                }
            };
            let as_ = if message.is_some() && as_ == decode::As::Auto {
                decode::As::Message
            } else {
                as_
            };
            let lines =
                decode::decode(&bytes, as_, message.as_deref()).map_err(|e| anyhow!("{e}"))?;
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        Command::Token { command } => token::run(command),
        Command::Demo { listen, web } => demo::run(listen, web, &client).await,
        Command::Bench(args) => bench::run(&client, args).await,
    }
}
