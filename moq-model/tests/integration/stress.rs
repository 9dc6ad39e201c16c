//! A producer on one thread, many consumers on others: no frame lost, duplicated or
//! reordered within a group, and groups in increasing order.

use std::time::Duration;

use bytes::Bytes;
use moq_model::{Track, TrackConsumer};

use crate::support;

const GROUPS: u64 = 300;
const FRAMES: u32 = 40;
const CONSUMERS: usize = 8;

fn payload(group: u64, frame: u32) -> Bytes {
    // Varying sizes so a mix-up would show in the length too.
    let mut bytes = Vec::with_capacity(12 + frame as usize % 7);
    bytes.extend_from_slice(&group.to_be_bytes());
    bytes.extend_from_slice(&frame.to_be_bytes());
    bytes.resize(12 + frame as usize % 7, 0xa5);
    Bytes::from(bytes)
}

/// Reads the whole track; returns how many groups were received in full.
async fn consume(mut track: TrackConsumer, chunked: bool) -> u64 {
    let mut last = None;
    let mut complete = 0;
    while let Some(mut group) = track.next_group().await.unwrap() {
        let sequence = group.sequence();
        assert!(
            last < Some(sequence),
            "groups out of order: {last:?} then {sequence}"
        );
        last = Some(sequence);
        let mut index = 0;
        loop {
            let frame = if chunked {
                match group.next_frame().await.unwrap() {
                    Some(mut frame) => {
                        let mut joined = Vec::new();
                        while let Some(chunk) = frame.read_chunk().await.unwrap() {
                            joined.extend_from_slice(&chunk);
                        }
                        assert_eq!(joined.len(), frame.size());
                        Bytes::from(joined)
                    }
                    None => break,
                }
            } else {
                match group.read_frame().await.unwrap() {
                    Some(frame) => frame,
                    None => break,
                }
            };
            assert_eq!(
                frame,
                payload(sequence, index),
                "group {sequence} frame {index}"
            );
            index += 1;
        }
        // Every group a consumer gets, it gets whole: frames are never lost.
        assert_eq!(index, FRAMES, "group {sequence}");
        complete += 1;
    }
    assert_eq!(last, Some(GROUPS - 1), "the last group always arrives");
    complete
}

#[test]
fn many_threads_no_loss_no_duplicates_no_reordering() {
    let (mut producer, consumer) = Track::build(["stress"])
        .group_expires(Duration::from_millis(50))
        .max_groups(8)
        .produce();

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let track = consumer.clone();
            std::thread::spawn(move || support::block_on(consume(track, i % 2 == 1)))
        })
        .collect();
    drop(consumer);

    for g in 0..GROUPS {
        let mut group = producer.append_group();
        for f in 0..FRAMES {
            let payload = payload(g, f);
            if f % 3 == 0 {
                // Some frames in two chunks.
                let mut frame = group.create_frame(payload.len()).unwrap();
                frame.write(payload.slice(..5)).unwrap();
                frame.write(payload.slice(5..)).unwrap();
            } else {
                group.write_frame(payload).unwrap();
            }
        }
        group.finish();
    }
    producer.finish();

    for handle in consumers {
        let complete = handle.join().unwrap();
        assert!(complete >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_tokio() {
    let (mut producer, consumer) = Track::build(["stress-tokio"])
        .group_expires(Duration::from_secs(3600))
        .max_groups(GROUPS as usize)
        .produce();
    let tasks: Vec<_> = (0..CONSUMERS)
        .map(|i| tokio::spawn(consume(consumer.clone(), i % 2 == 0)))
        .collect();
    drop(consumer);
    let writer = std::thread::spawn(move || {
        for g in 0..GROUPS {
            let mut group = producer.append_group();
            for f in 0..FRAMES {
                group.write_frame(payload(g, f)).unwrap();
            }
        }
    });
    for task in tasks {
        // Everything stays cached here, so every consumer gets every group.
        assert_eq!(task.await.unwrap(), GROUPS);
    }
    writer.join().unwrap();
}
