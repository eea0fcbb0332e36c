//! Admission control for queries: at most `max_concurrent_queries` lookups, lists and SQL
//! statements run at once, the others wait in arrival order (a fair semaphore), and a query
//! that waited `queue_timeout_s` or found `max_queued_queries` already waiting is answered
//! "busy" at once (HTTP 503 with `Retry-After`, PostgreSQL SQLSTATE `53300`) instead of
//! being started.
//!
//! Why: every query scans Parquet on the same cores. Measured at 10 M passes on this 2-core
//! machine before the gate (README, plate lookups): 200 clients each starting a lookup made
//! all of them share the cores, so none finished within the 30 s limit and 3,686 of 3,712
//! were answered 503 only after 30 s each. With the gate the cores run a few queries to
//! completion, the queue turns over in order, and a client the server cannot serve in time
//! hears so after the queue time instead of after the query time. The query time limit
//! (`query_timeout_s`) counts from admission.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::ServeMetrics;

/// Why a query was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// `max_queued_queries` were already waiting.
    QueueFull = 0,
    /// It waited `queue_timeout_s` without a free slot.
    QueueTimeout = 1,
}

impl Busy {
    /// The label of the rejection counter (`plumewatch_queries_rejected_total{reason}`).
    fn reason(self) -> &'static str {
        match self {
            Busy::QueueFull => "queue_full",
            Busy::QueueTimeout => "queue_timeout",
        }
    }

    /// The message sent to the client.
    pub fn message(self, gate: &QueryGate) -> String {
        match self {
            Busy::QueueFull => format!(
                "the server is busy: {} queries running and {} waiting ([serve] max_queued_queries); try again shortly",
                gate.running(),
                gate.max_queued
            ),
            Busy::QueueTimeout => format!(
                "the server is busy: no query slot freed within {} s ([serve] queue_timeout_s); try again shortly",
                gate.queue_timeout.as_secs_f64()
            ),
        }
    }
}

/// The gate every query passes (one per server, shared by the HTTP API and the PostgreSQL
/// endpoint).
pub struct QueryGate {
    slots: Arc<Semaphore>,
    max_running: usize,
    max_queued: usize,
    queue_timeout: Duration,
    /// `plumewatch_queries_running` / `plumewatch_queries_waiting` (`super::metrics`); the
    /// waiting gauge is also the count the queue bound is checked against.
    running_gauge: Gauge,
    waiting_gauge: Gauge,
    /// `plumewatch_queries_rejected_total{reason}` for `queue_full`, `queue_timeout`.
    rejected: [Counter; 2],
}

/// An admitted query's slot; dropping it lets the next waiting query in.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    running: Gauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.running.dec();
    }
}

/// Decrements the waiting count however the wait ends (admitted, timed out, or the request
/// dropped by a closed connection).
struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl QueryGate {
    /// A gate running at most `max_running` queries (≥ 1) with at most `max_queued` waiting,
    /// each for at most `queue_timeout`, counted in `metrics` (running, waiting, rejected).
    pub fn new(
        max_running: usize,
        max_queued: usize,
        queue_timeout: Duration,
        metrics: &ServeMetrics,
    ) -> QueryGate {
        let max_running = max_running.max(1);
        QueryGate {
            slots: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_queued,
            queue_timeout,
            running_gauge: metrics.queries_running.clone(),
            waiting_gauge: metrics.queries_waiting.clone(),
            rejected: [Busy::QueueFull, Busy::QueueTimeout]
                .map(|b| metrics.queries_rejected(b.reason())),
        }
    }

    fn refuse(&self, b: Busy) -> Busy {
        self.rejected[b as usize].inc();
        b
    }

    fn admitted(&self, p: OwnedSemaphorePermit) -> Admitted {
        self.running_gauge.inc();
        Admitted {
            _permit: p,
            running: self.running_gauge.clone(),
        }
    }

    /// Waits for a slot, in arrival order. Errors (counted in the metrics):
    /// [`Busy::QueueFull`] at once when `max_queued` queries are already waiting and no slot
    /// is free; [`Busy::QueueTimeout`] after `queue_timeout`.
    pub async fn admit(&self) -> Result<Admitted, Busy> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(self.admitted(p));
        }
        let _w = Waiting(&self.waiting_gauge);
        if self.waiting_gauge.inc() >= self.max_queued as i64 {
            return Err(self.refuse(Busy::QueueFull));
        }
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(self.admitted(p)),
            // The semaphore is never closed; a closed one admits nothing.
            Ok(Err(_)) | Err(_) => Err(self.refuse(Busy::QueueTimeout)),
        }
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.max_running - self.slots.available_permits()
    }

    /// Queries waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting_gauge.get().max(0) as usize
    }

    /// Seconds a client told "busy" should wait before trying again (`Retry-After`): one
    /// queue time, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        self.queue_timeout.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_the_slots_then_queues_in_order_then_refuses() {
        let gate = Arc::new(QueryGate::new(
            2,
            1,
            Duration::from_secs(30),
            &ServeMetrics::default(),
        ));
        let a = gate.admit().await.unwrap();
        let _b = gate.admit().await.unwrap();
        assert_eq!((gate.running(), gate.waiting()), (2, 0));
        // The third waits; a fourth finds the queue (1) full and is refused at once.
        let g = gate.clone();
        let third = tokio::spawn(async move { g.admit().await.map(|_| ()) });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.admit().await.err(), Some(Busy::QueueFull));
        // A slot frees: the waiting one is admitted, the queue empties.
        drop(a);
        assert_eq!(third.await.unwrap(), Ok(()));
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn a_query_waiting_longer_than_the_queue_time_is_refused() {
        let gate = QueryGate::new(1, 10, Duration::from_millis(300), &ServeMetrics::default());
        let _held = gate.admit().await.unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(gate.admit().await.err(), Some(Busy::QueueTimeout));
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(gate.waiting(), 0, "the timed-out query left the queue");
        assert_eq!(gate.running(), 1);
        assert_eq!(gate.retry_after_s(), 1);
    }
}
