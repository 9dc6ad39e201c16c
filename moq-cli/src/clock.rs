//! `moq clock publish|subscribe`: the clock track of the published `moq-clock` tool.
//!
//! One group per minute (UTC), its sequence the number of minutes since the Unix epoch;
//! frame 0 is `YYYY-MM-DD HH:MM:`, then one frame a second with the two-digit seconds
//! (`00`..`59`). The subscriber prints `YYYY-MM-DD HH:MM:SS`, one line per frame.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use moq_model::{Path, Track, TrackConsumer, TrackProducer};
use moq_session::Session;
use tokio::io::AsyncWriteExt;

use crate::client::{session_error, track_error};

/// Seconds since the Unix epoch, and the nanoseconds into the current second.
fn now() -> (u64, u32) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

/// The civil (proleptic Gregorian) date of a day count since 1970-01-01.
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Eras of 400 years (146097 days), counted from 0000-03-01 so leap days come last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD HH:MM:` for the minute containing `secs` (UTC).
pub(crate) fn minute_prefix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (year, month, day) = civil_date(days);
    let in_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:",
        in_day / 3600,
        (in_day / 60) % 60
    )
}

/// Publishes the clock at `path` until the session ends.
pub(crate) async fn publish(session: &Session, path: Path) -> anyhow::Result<()> {
    let (producer, consumer) = Track::new(path).produce();
    session
        .publish(consumer)
        .map_err(|e| anyhow!("cannot publish: {e}"))?;
    tokio::select! {
        result = run_publisher(producer) => result,
        err = session.closed() => Err(anyhow!("the session ended: {}", session_error(&err))),
    }
}

/// Writes the clock into `track` forever.
pub(crate) async fn run_publisher(mut track: TrackProducer) -> anyhow::Result<()> {
    loop {
        let (secs, _) = now();
        let minute = secs / 60;
        let mut group = match track.create_group(minute) {
            Ok(group) => group,
            // The clock went backwards: wait for a minute we have not used.
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        group
            .write_frame(minute_prefix(secs))
            .map_err(|e| anyhow!("{e}"))?;
        loop {
            let (secs, nanos) = now();
            if secs / 60 != minute {
                break;
            }
            group
                .write_frame(format!("{:02}", secs % 60))
                .map_err(|e| anyhow!("{e}"))?;
            // Wake just after the next second starts.
            let wait =
                Duration::from_nanos(u64::from(1_000_000_000 - nanos)) + Duration::from_millis(2);
            tokio::time::sleep(wait).await;
        }
        group.finish();
    }
}

/// Prints the clock at `path` until the track or the session ends.
pub(crate) async fn subscribe(session: &Session, path: Path) -> anyhow::Result<()> {
    let track = session.subscribe(Track::new(path.clone()));
    tokio::select! {
        result = print(track) => result.map_err(|e| match e {
            Printed::Track(err) => track_error(err, &path),
            Printed::Output(err) => anyhow!("writing stdout: {err}"),
        }),
        err = session.closed() => Err(anyhow!("the session ended: {}", session_error(&err))),
    }
}

pub(crate) enum Printed {
    Track(moq_model::Error),
    Output(std::io::Error),
}

/// Prints `YYYY-MM-DD HH:MM:SS` for every seconds frame of every group.
pub(crate) async fn print(mut track: TrackConsumer) -> Result<(), Printed> {
    let mut stdout = tokio::io::stdout();
    while let Some(mut group) = track.next_group().await.map_err(Printed::Track)? {
        let base = match group.read_frame().await {
            Ok(Some(base)) => base,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!(%err, "group lost");
                continue;
            }
        };
        let base = String::from_utf8_lossy(&base).into_owned();
        loop {
            match group.read_frame().await {
                Ok(Some(seconds)) => {
                    let line = format!("{base}{}\n", String::from_utf8_lossy(&seconds));
                    match stdout.write_all(line.as_bytes()).await {
                        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                        other => other.map_err(Printed::Output)?,
                    }
                    stdout.flush().await.map_err(Printed::Output)?;
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(%err, "group lost");
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(minute_prefix(0), "1970-01-01 00:00:");
        // 2000-02-29 23:59:59 (a leap day in a century leap year).
        assert_eq!(minute_prefix(951_868_799), "2000-02-29 23:59:");
        // 2024-12-31 12:34:56
        assert_eq!(minute_prefix(1_735_648_496), "2024-12-31 12:34:");
        // 2100-03-01 00:00:00 (2100 is not a leap year).
        assert_eq!(minute_prefix(4_107_542_400), "2100-03-01 00:00:");
    }
}
