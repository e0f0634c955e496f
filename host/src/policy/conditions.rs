//! What a link's conditions may be: the values no link can carry are
//! refused here, before the lab asks the kernel (how this kernel carries
//! the rest is the lab's: [`crate::lab::conditions`]).

/// A link's conditions, in the WIT's units; `None` leaves one out. The
/// journal keeps them as JSON, so that `nsw link` can change one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conditions {
    pub rate_bps: Option<u64>,
    pub delay_us: Option<u32>,
    pub jitter_us: Option<u32>,
    pub loss_percent: Option<f64>,
    pub loss_correlation_percent: Option<f64>,
    pub duplicate_percent: Option<f64>,
    pub corrupt_percent: Option<f64>,
    pub reorder_percent: Option<f64>,
    pub queue_packets: Option<u32>,
}

impl Conditions {
    /// The settings given in percent, by name.
    pub fn percentages(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("loss", self.loss_percent),
            ("loss correlation", self.loss_correlation_percent),
            ("duplicate", self.duplicate_percent),
            ("corrupt", self.corrupt_percent),
            ("reorder", self.reorder_percent),
        ]
    }

    /// Refuse what no link can do, naming the value.
    pub fn check(&self) -> Result<(), String> {
        if let Some(rate) = self.rate_bps {
            if rate < 1000 {
                return Err(format!("rate {rate} bit/s is below the least nsw sets, 1000 bit/s"));
            }
        }
        if let Some(d) = self.delay_us {
            if d > 60_000_000 {
                return Err(format!("delay {d} µs is over a minute"));
            }
        }
        if let Some(j) = self.jitter_us {
            match self.delay_us {
                None => return Err("a jitter needs a delay".into()),
                Some(d) if j > d => return Err(format!("jitter {j} µs is larger than the delay, {d} µs")),
                _ => {}
            }
        }
        for (name, value) in self.percentages() {
            if let Some(p) = value {
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!("{name} {p}% is not a percentage (0-100)"));
                }
            }
        }
        if self.loss_correlation_percent.is_some() && self.loss_percent.is_none() {
            return Err("a loss correlation needs a loss".into());
        }
        if self.reorder_percent.is_some_and(|r| r > 0.0) && self.delay_us.is_none_or(|d| d == 0) {
            return Err("reordering needs a delay (reordered packets skip it)".into());
        }
        if let Some(q) = self.queue_packets {
            if !(1..=1_000_000).contains(&q) {
                return Err(format!("a queue of {q} packets is not 1-1000000"));
            }
        }
        Ok(())
    }

    /// What needs netem, by name: the first one, for the error.
    pub fn needs_netem(&self) -> Option<&'static str> {
        let set = |v: Option<f64>| v.is_some_and(|p| p > 0.0);
        [
            ("delay", self.delay_us.is_some_and(|d| d > 0)),
            ("jitter", self.jitter_us.is_some_and(|j| j > 0)),
            ("loss correlation", set(self.loss_correlation_percent)),
            ("duplicate", set(self.duplicate_percent)),
            ("corrupt", set(self.corrupt_percent)),
            ("reorder", set(self.reorder_percent)),
        ]
        .into_iter()
        .find(|(_, needed)| *needed)
        .map(|(name, _)| name)
    }

    /// How the journal and `nsw link --show` say it: `rate 20000000 bit/s,
    /// loss 20%`; empty for none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.rate_bps {
            parts.push(format!("rate {r} bit/s"));
        }
        if let Some(d) = self.delay_us {
            parts.push(format!("delay {d} µs"));
        }
        if let Some(j) = self.jitter_us {
            parts.push(format!("jitter {j} µs"));
        }
        for (name, value) in self.percentages() {
            if let Some(p) = value {
                parts.push(format!("{name} {p}%"));
            }
        }
        if let Some(q) = self.queue_packets {
            parts.push(format!("queue {q} packets"));
        }
        parts.join(", ")
    }
}

