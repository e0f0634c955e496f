//! Per-lab limits: what a single lab may create and use, each with the
//! flag that raises it. [`LIMITS`] is the one table they come from: the
//! defaults, the `nsw run` flags and their help, the help text and the
//! README's table of limits (a test checks it) are all made from it.

/// Longest string the host will even look at from a guest, by default.
pub const MAX_GUEST_STRING: usize = 4096;

/// The limits a lab runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub netns: u64,
    pub links: u64,
    /// Bridges count twice: besides being links, each costs the kernel an
    /// RCU grace period (about 16 ms here) to delete, with the rtnl lock
    /// held, so thousands would stall the machine's networking for minutes.
    pub bridges: u64,
    pub addresses: u64,
    pub routes: u64,
    /// Echo requests over the whole run.
    pub pings: u64,
    /// Echo requests per second.
    pub ping_rate: u32,
    /// Longest string a guest may pass to a host call.
    pub string_bytes: usize,
    /// Calls that may fail (any error nsw returns to the script): a script
    /// that repeats a failing call in a loop is stopped, not fed forever.
    pub failures: u64,
    /// nftables rules: masquerades, filter rules, port forwards.
    pub rules: u64,
    /// The lab's journal under /run/nsw (RAM on most machines), in bytes.
    pub journal_bytes: u64,
    /// Checks recorded for the report.
    pub checks: u64,
    /// A check's detail as the report keeps it (escaped), in bytes.
    pub check_detail_bytes: usize,
    /// The report's checks in all (names and details), in bytes.
    pub report_bytes: usize,
    /// TCP connections, throughput runs and traces.
    pub probes: u64,
    /// WebAssembly services started.
    pub services: u64,
    /// Programs started (`--allow exec`).
    pub processes: u64,
    /// Processes and threads the lab's programs may have at once (the
    /// lab's pids cgroup, where the machine has one to give).
    pub tasks: u64,
    /// Bytes the script writes into its nodes' files, in all.
    pub node_file_bytes: u64,
    /// Wall-clock time of the run, in seconds.
    pub timeout_secs: u64,
    /// The script's memory, in bytes.
    pub memory_bytes: usize,
    /// What the script may print (stdout and stderr), in bytes.
    pub output_bytes: usize,
    /// The script's and its services' memory together, in bytes.
    pub memory_total_bytes: usize,
    /// Largest component (the script, or a service it starts), in bytes:
    /// what compiling it takes grows with it.
    pub component_bytes: usize,
    /// What compiling one component may take, in bytes (in a process of
    /// its own).
    pub compile_memory_bytes: usize,
    /// The compiled cache in all, in bytes: past it, the least recently
    /// used components go.
    pub cache_bytes: u64,
    /// What one run may add to the compiled cache, in bytes.
    pub cache_run_bytes: u64,
}

/// One row of the table: a limit, its flag and what it counts.
pub struct Limit {
    /// The flag, without `--`.
    pub flag: &'static str,
    /// Other names the flag answers to.
    pub aliases: &'static [&'static str],
    /// The default, in the flag's unit.
    pub default: u64,
    /// The flag's unit, as its help shows it.
    pub unit: &'static str,
    /// The smallest and largest value the flag takes.
    pub range: (u64, u64),
    /// What it limits, as the help and the README say.
    pub what: &'static str,
    /// The README's words for the default (`60 s`).
    pub shown: fn(u64) -> String,
    set: fn(&mut Limits, u64),
}

fn plain(v: u64) -> String {
    v.to_string()
}
fn kib(v: u64) -> String {
    format!("{v} KiB")
}

const N: &str = "N";
const ANY: (u64, u64) = (0, u64::MAX);
const SOME: (u64, u64) = (1, u64::MAX);

/// Every limit, in the order the help and the README list them.
pub const LIMITS: &[Limit] = &[
    Limit { flag: "max-netns", aliases: &[], default: 1024, unit: N, range: ANY, what: "namespaces the lab may create", shown: plain, set: |l, v| l.netns = v },
    Limit { flag: "max-links", aliases: &[], default: 4096, unit: N, range: ANY, what: "links (veth ends, bridges) the lab may create", shown: plain, set: |l, v| l.links = v },
    Limit {
        flag: "max-bridges",
        aliases: &[],
        default: 256,
        unit: N,
        range: ANY,
        what: "bridges the lab may create (each takes the kernel ~16 ms to delete, under the rtnl lock)",
        shown: plain,
        set: |l, v| l.bridges = v,
    },
    Limit { flag: "max-addresses", aliases: &[], default: 4096, unit: N, range: ANY, what: "addresses the lab may add", shown: plain, set: |l, v| l.addresses = v },
    Limit { flag: "max-routes", aliases: &[], default: 4096, unit: N, range: ANY, what: "routes the lab may add", shown: plain, set: |l, v| l.routes = v },
    Limit {
        flag: "max-rules",
        aliases: &["max-nat-rules"],
        default: 256,
        unit: N,
        range: ANY,
        what: "nftables rules the lab may add: masquerades, filter rules, port forwards",
        shown: plain,
        set: |l, v| l.rules = v,
    },
    Limit { flag: "max-pings", aliases: &[], default: 10_000, unit: N, range: ANY, what: "echo requests the lab may send in all", shown: plain, set: |l, v| l.pings = v },
    Limit {
        flag: "ping-rate",
        aliases: &[],
        default: 1000,
        unit: N,
        range: (1, u32::MAX as u64),
        what: "echo requests per second at most",
        shown: |v| format!("{v} per second"),
        set: |l, v| l.ping_rate = v as u32,
    },
    Limit {
        flag: "max-probes",
        aliases: &[],
        default: 10_000,
        unit: N,
        range: ANY,
        what: "TCP connections, throughput runs and traces the script may make",
        shown: plain,
        set: |l, v| l.probes = v,
    },
    Limit { flag: "max-checks", aliases: &[], default: 10_000, unit: N, range: ANY, what: "checks the script may record", shown: plain, set: |l, v| l.checks = v },
    Limit {
        flag: "max-check-detail",
        aliases: &[],
        default: 4096,
        unit: "BYTES",
        range: (16, u32::MAX as u64),
        what: "a check's detail as the report keeps it (the rest is cut off)",
        shown: |v| format!("{v} bytes"),
        set: |l, v| l.check_detail_bytes = v as usize,
    },
    Limit {
        flag: "max-report",
        aliases: &[],
        default: 1024,
        unit: "KIB",
        range: SOME,
        what: "the checks' names and details in all (then the script is stopped)",
        shown: kib,
        set: |l, v| l.report_bytes = (v as usize).saturating_mul(1024),
    },
    Limit { flag: "max-services", aliases: &[], default: 64, unit: N, range: ANY, what: "WebAssembly services the script may start", shown: plain, set: |l, v| l.services = v },
    Limit {
        flag: "max-processes",
        aliases: &[],
        default: 1024,
        unit: N,
        range: ANY,
        what: "programs the script may start (with --allow exec)",
        shown: plain,
        set: |l, v| l.processes = v,
    },
    Limit {
        flag: "max-tasks",
        aliases: &[],
        default: 4096,
        unit: N,
        range: (1, 4_194_304),
        what: "processes and threads the lab's programs may have at once (a fork bomb stops there)",
        shown: plain,
        set: |l, v| l.tasks = v,
    },
    Limit {
        flag: "max-node-files",
        aliases: &[],
        default: 16384,
        unit: "KIB",
        range: ANY,
        what: "bytes the script may write into its nodes' files in all",
        shown: kib,
        set: |l, v| l.node_file_bytes = v.saturating_mul(1024),
    },
    Limit {
        flag: "max-failures",
        aliases: &[],
        default: 1000,
        unit: N,
        range: ANY,
        what: "calls of the script that may fail before it is stopped",
        shown: plain,
        set: |l, v| l.failures = v,
    },
    Limit {
        flag: "max-journal",
        aliases: &[],
        default: 8192,
        unit: "KIB",
        range: SOME,
        what: "size the lab's journal (under /run/nsw, RAM on most machines) may grow to",
        shown: kib,
        set: |l, v| l.journal_bytes = v.saturating_mul(1024),
    },
    Limit {
        flag: "timeout",
        aliases: &[],
        default: 60,
        unit: "SECONDS",
        range: (1, 86_400),
        what: "wall-clock time of the run (every wait inside nsw ends with it too)",
        shown: |v| format!("{v} s"),
        set: |l, v| l.timeout_secs = v,
    },
    Limit {
        flag: "memory",
        aliases: &[],
        default: 64,
        unit: "MIB",
        range: SOME,
        what: "memory the script may use",
        shown: |v| format!("{v} MiB"),
        set: |l, v| l.memory_bytes = (v as usize).saturating_mul(1 << 20),
    },
    Limit {
        flag: "max-memory-total",
        aliases: &[],
        default: 1024,
        unit: "MIB",
        range: SOME,
        what: "memory of the script and its services together (each service may use as much as the script)",
        shown: |v| format!("{v} MiB"),
        set: |l, v| l.memory_total_bytes = (v as usize).saturating_mul(1 << 20),
    },
    Limit {
        flag: "max-component",
        aliases: &[],
        default: 64,
        unit: "MIB",
        range: SOME,
        what: "size of the script's component and of each service component it starts (compiling takes memory and time that grow with it)",
        shown: |v| format!("{v} MiB"),
        set: |l, v| l.component_bytes = (v as usize).saturating_mul(1 << 20),
    },
    Limit {
        flag: "max-compile-memory",
        aliases: &[],
        default: 2048,
        unit: "MIB",
        range: (64, u64::MAX),
        what: "memory compiling one component may take (the script's or a service's, in a process of its own)",
        shown: |v| format!("{v} MiB"),
        set: |l, v| l.compile_memory_bytes = (v as usize).saturating_mul(1 << 20),
    },
    Limit {
        flag: "max-cache",
        aliases: &[],
        default: 1024,
        unit: "MIB",
        range: SOME,
        what: "the compiled cache in all (the least recently used components go first)",
        shown: |v| format!("{v} MiB"),
        set: |l, v| l.cache_bytes = v.saturating_mul(1 << 20),
    },
    Limit {
        flag: "max-cache-per-run",
        aliases: &[],
        default: 256,
        unit: "MIB",
        range: ANY,
        what: "what one run may add to the compiled cache (the rest is compiled, used and not kept)",
        shown: |v| format!("{v} MiB"),
        set: |l, v| l.cache_run_bytes = v.saturating_mul(1 << 20),
    },
    Limit {
        flag: "max-output",
        aliases: &[],
        default: 1024,
        unit: "KIB",
        range: ANY,
        what: "output (stdout and stderr) the script may print",
        shown: kib,
        set: |l, v| l.output_bytes = (v as usize).saturating_mul(1024),
    },
    Limit {
        flag: "max-string",
        aliases: &[],
        default: MAX_GUEST_STRING as u64,
        unit: "BYTES",
        range: SOME,
        what: "longest string the script may pass to nsw",
        shown: |v| format!("{v} bytes"),
        set: |l, v| l.string_bytes = v as usize,
    },
];

impl Limit {
    /// Set this limit in `limits` to `value` (in the flag's unit), if it is
    /// in range.
    pub fn apply(&self, limits: &mut Limits, value: u64) -> Result<(), String> {
        let (lo, hi) = self.range;
        if !(lo..=hi).contains(&value) {
            return Err(format!("--{} must be {lo} to {hi}", self.flag));
        }
        (self.set)(limits, value);
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        let mut limits = Limits {
            netns: 0,
            links: 0,
            bridges: 0,
            addresses: 0,
            routes: 0,
            pings: 0,
            ping_rate: 0,
            string_bytes: 0,
            failures: 0,
            rules: 0,
            journal_bytes: 0,
            checks: 0,
            check_detail_bytes: 0,
            report_bytes: 0,
            probes: 0,
            services: 0,
            processes: 0,
            tasks: 0,
            node_file_bytes: 0,
            timeout_secs: 0,
            memory_bytes: 0,
            output_bytes: 0,
            memory_total_bytes: 0,
            component_bytes: 0,
            compile_memory_bytes: 0,
            cache_bytes: 0,
            cache_run_bytes: 0,
        };
        for limit in LIMITS {
            (limit.set)(&mut limits, limit.default);
        }
        limits
    }
}

/// The README's table of limits, as Markdown.
pub fn markdown_table() -> String {
    let mut table = String::from("| limit | default | flag |\n|---|---|---|\n");
    for limit in LIMITS {
        let flags: Vec<String> = std::iter::once(limit.flag).chain(limit.aliases.iter().copied()).map(|f| format!("`--{f}`")).collect();
        table += &format!("| {} | {} | {} |\n", limit.what, (limit.shown)(limit.default), flags.join(", "));
    }
    table
}

/// One line per limit, for `nsw run --help`.
pub fn summary() -> String {
    LIMITS.iter().map(|l| format!("{} (--{})", (l.shown)(l.default), l.flag)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_a_row_and_every_default_is_in_range() {
        // Every field is set from the table: a zero default would mean a
        // row is missing (no limit defaults to zero).
        let l = Limits::default();
        for (value, name) in [
            (l.netns, "netns"),
            (l.links, "links"),
            (l.bridges, "bridges"),
            (l.addresses, "addresses"),
            (l.routes, "routes"),
            (l.pings, "pings"),
            (l.ping_rate as u64, "ping_rate"),
            (l.string_bytes as u64, "string_bytes"),
            (l.failures, "failures"),
            (l.rules, "rules"),
            (l.journal_bytes, "journal_bytes"),
            (l.checks, "checks"),
            (l.check_detail_bytes as u64, "check_detail_bytes"),
            (l.report_bytes as u64, "report_bytes"),
            (l.probes, "probes"),
            (l.services, "services"),
            (l.processes, "processes"),
            (l.tasks, "tasks"),
            (l.timeout_secs, "timeout_secs"),
            (l.memory_bytes as u64, "memory_bytes"),
            (l.output_bytes as u64, "output_bytes"),
            (l.memory_total_bytes as u64, "memory_total_bytes"),
            (l.component_bytes as u64, "component_bytes"),
            (l.compile_memory_bytes as u64, "compile_memory_bytes"),
            (l.cache_bytes, "cache_bytes"),
            (l.cache_run_bytes.max(1), "cache_run_bytes"),
        ] {
            assert!(value > 0, "no row of LIMITS sets {name}");
        }
        for limit in LIMITS {
            assert!((limit.range.0..=limit.range.1).contains(&limit.default), "--{}", limit.flag);
        }
        assert_eq!(l.timeout_secs, 60);
        assert_eq!(l.memory_bytes, 64 << 20);
    }
}
