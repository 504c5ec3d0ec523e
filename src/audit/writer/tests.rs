use super::*;
use crate::audit::TestDir;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Written = Arc<Mutex<Vec<(u64, Instant)>>>;

/// A sink whose every write takes `stall`, recording what it wrote and when.
struct Stalling {
    stall: Duration,
    written: Written,
}

impl Sink for Stalling {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        std::thread::sleep(self.stall);
        let id = record.entry.id().unwrap_or(0);
        self.written.lock().unwrap().push((id, Instant::now()));
        Ok(())
    }
}

fn stalling(stall: Duration) -> (JournalWriter, Written) {
    let written = Arc::new(Mutex::new(Vec::new()));
    let sink = Stalling {
        stall,
        written: Arc::clone(&written),
    };
    (
        JournalWriter::start(sink, "/test/journal.jsonl".into()).unwrap(),
        written,
    )
}

/// The agent's runtime is single-threaded: while the disk stalls for 2 s on an intent,
/// timers, channel messages and other tasks on that thread keep being served, and the
/// action gated on the intent starts only after the intent is on disk.
#[tokio::test]
async fn a_stalled_disk_holds_the_action_but_never_the_runtime() {
    let (writer, written) = stalling(Duration::from_secs(2));
    let started = Instant::now();
    let durable = writer.write(TestDir::record(1));
    let action_started = Arc::new(Mutex::new(None::<Instant>));
    let gate = {
        let action_started = Arc::clone(&action_started);
        tokio::spawn(async move {
            durable.await.unwrap();
            *action_started.lock().unwrap() = Some(Instant::now());
        })
    };
    // What the agent's loop does meanwhile: a 100 ms ticker (the watchdog's) and events
    // from another task (D-Bus, probes).
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for i in 0..10u32 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(i).await;
        }
    });
    let mut ticks = 0;
    let mut events = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < Duration::from_millis(1500) {
        tokio::select! {
            _ = ticker.tick() => ticks += 1,
            Some(_) = rx.recv() => events += 1,
        }
    }
    assert!(
        ticks >= 12,
        "the watchdog ticker ran {ticks} times in 1.5 s"
    );
    assert_eq!(events, 10, "events from other tasks were served");
    assert!(
        action_started.lock().unwrap().is_none(),
        "the action started before its intent was durable"
    );
    gate.await.unwrap();
    let on_disk = written.lock().unwrap()[0].1;
    let action = action_started.lock().unwrap().unwrap();
    assert!(
        action >= on_disk,
        "the action started before the write ended"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    writer.close();
}

#[tokio::test]
async fn records_are_written_in_the_order_they_were_queued() {
    let (writer, written) = stalling(Duration::ZERO);
    writer.record(TestDir::record(1));
    let second = writer.write(TestDir::record(2));
    writer.record(TestDir::record(3));
    second.await.unwrap();
    writer.close();
    let ids: Vec<u64> = written.lock().unwrap().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3]);
}

/// A sink that blocks every write until the test opens it.
struct Gated(std::sync::mpsc::Receiver<()>, bool);

impl Sink for Gated {
    fn append(&mut self, _record: &Record) -> Result<(), AuditError> {
        if !self.1 {
            self.1 = self.0.recv().is_ok();
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_full_queue_fails_the_intent_at_once_instead_of_growing() {
    let (open, gate) = std::sync::mpsc::channel();
    let writer = JournalWriter::start(Gated(gate, false), "/test/journal.jsonl".into()).unwrap();
    // The thread takes at most one and blocks on it; QUEUE more fill the channel.
    for id in 0..=QUEUE as u64 {
        writer.record(TestDir::record(id));
    }
    let refused = writer.write(TestDir::record(9999));
    let err = tokio::time::timeout(Duration::from_millis(50), refused)
        .await
        .expect("a refused write answers at once")
        .unwrap_err();
    assert!(matches!(err, AuditError::Behind { .. }), "{err}");
    open.send(()).unwrap();
    writer.close();
}

#[tokio::test]
async fn a_write_error_reaches_the_waiter() {
    let dir = TestDir::new("writer-error");
    let journal = Journal::open(
        &dir.0.join("audit.jsonl"),
        super::super::Rotation::default(),
    )
    .unwrap();
    let writer = JournalWriter::start(journal, dir.0.join("audit.jsonl")).unwrap();
    writer.write(TestDir::record(1)).await.unwrap();
    let mut unrepresentable = TestDir::record(2);
    unrepresentable.ts = std::time::SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    let err = writer.write(unrepresentable).await.unwrap_err();
    assert!(matches!(err, AuditError::Encode { .. }), "{err}");
    writer.close();
}
