//! The lock server's counters and their Prometheus text rendering (`GET /metrics`). Per replica:
//! each server counts what it answered; the semaphore gauges are the last values this replica
//! read from etcd.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Which endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    PreReboot,
    SteadyState,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::PreReboot => "pre-reboot",
            Op::SteadyState => "steady-state",
        }
    }
}

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    /// (endpoint, HTTP status) -> answered requests.
    answers: Mutex<BTreeMap<(&'static str, u16), u64>>,
    conflicts: AtomicU64,
    etcd_errors: AtomicU64,
    latency: [Histogram; 2],
    /// group -> (holders, slots) as last read.
    groups: Mutex<BTreeMap<String, (usize, u64)>>,
}

impl Metrics {
    pub fn answered(&self, op: Op, status: u16, took: Duration) {
        *self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op.name(), status))
            .or_default() += 1;
        self.latency[op as usize].observe(took);
    }

    pub fn attempts(&self, conflicts: u64, etcd_errors: u64) {
        self.conflicts.fetch_add(conflicts, Relaxed);
        self.etcd_errors.fetch_add(etcd_errors, Relaxed);
    }

    pub fn group(&self, group: &str, holders: usize, slots: u64) {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_string(), (holders, slots));
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut o = String::new();
        o.push_str("# HELP cairn_fleetlock_requests_total Lock requests answered, by endpoint and HTTP status.\n");
        o.push_str("# TYPE cairn_fleetlock_requests_total counter\n");
        for ((ep, code), n) in self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "cairn_fleetlock_requests_total{{endpoint=\"{ep}\",code=\"{code}\"}} {n}"
            );
        }
        counter(
            &mut o,
            "cairn_fleetlock_cas_conflicts_total",
            "Compare-and-set transactions lost to a concurrent writer and retried.",
            self.conflicts.load(Relaxed),
        );
        counter(
            &mut o,
            "cairn_fleetlock_etcd_errors_total",
            "etcd calls that failed (member down, timeout) and were retried or reported.",
            self.etcd_errors.load(Relaxed),
        );
        self.render_latency(&mut o);
        self.render_groups(&mut o);
        o
    }

    fn render_latency(&self, o: &mut String) {
        let name = "cairn_fleetlock_request_duration_seconds";
        let _ = writeln!(o, "# HELP {name} Time to answer a lock request.");
        let _ = writeln!(o, "# TYPE {name} histogram");
        for op in [Op::PreReboot, Op::SteadyState] {
            let h = &self.latency[op as usize];
            let ep = op.name();
            let mut cumulative = 0;
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                cumulative += c.load(Relaxed);
                let _ = writeln!(
                    o,
                    "{name}_bucket{{endpoint=\"{ep}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Relaxed);
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(o, "{name}_bucket{{endpoint=\"{ep}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(o, "{name}_sum{{endpoint=\"{ep}\"}} {sum}");
            let _ = writeln!(o, "{name}_count{{endpoint=\"{ep}\"}} {count}");
        }
    }

    fn render_groups(&self, o: &mut String) {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        o.push_str("# HELP cairn_fleetlock_semaphore_holders Slots held, per group, as last read from etcd by this replica.\n");
        o.push_str("# TYPE cairn_fleetlock_semaphore_holders gauge\n");
        for (g, (holders, _)) in groups.iter() {
            let _ = writeln!(
                o,
                "cairn_fleetlock_semaphore_holders{{group=\"{g}\"}} {holders}"
            );
        }
        o.push_str("# HELP cairn_fleetlock_semaphore_slots Total slots, per group, as last read from etcd by this replica.\n");
        o.push_str("# TYPE cairn_fleetlock_semaphore_slots gauge\n");
        for (g, (_, slots)) in groups.iter() {
            let _ = writeln!(
                o,
                "cairn_fleetlock_semaphore_slots{{group=\"{g}\"}} {slots}"
            );
        }
    }
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_labels() {
        let m = Metrics::default();
        m.answered(Op::PreReboot, 200, Duration::from_millis(3));
        m.answered(Op::PreReboot, 409, Duration::from_millis(30));
        m.group("workers", 1, 2);
        let t = m.render();
        assert!(
            t.contains("cairn_fleetlock_requests_total{endpoint=\"pre-reboot\",code=\"409\"} 1")
        );
        assert!(t.contains(
            "cairn_fleetlock_request_duration_seconds_bucket{endpoint=\"pre-reboot\",le=\"0.005\"} 1"
        ));
        assert!(t.contains(
            "cairn_fleetlock_request_duration_seconds_bucket{endpoint=\"pre-reboot\",le=\"0.05\"} 2"
        ));
        assert!(t.contains("cairn_fleetlock_semaphore_slots{group=\"workers\"} 2"));
    }
}
