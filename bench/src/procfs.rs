//! What the kernel says about a process: resident memory and CPU time, read from `/proc`, so
//! the coordinator's own figures are measured from outside it.

use anyhow::Context as _;

/// Memory of a process in MiB: current resident set (VmRSS) and its peak (VmHWM).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_memory(&status).with_context(|| format!("no VmRSS/VmHWM in /proc/{pid}/status"))
}

fn parse_memory(status: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
    };
    Some(Memory {
        rss_mib: kib("VmRSS:")? / 1024.0,
        peak_rss_mib: kib("VmHWM:")? / 1024.0,
    })
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("malformed /proc/{pid}/stat"))?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    Ok(ticks as f64 / per_second as f64)
}

/// utime + stime: fields 14 and 15, counted after the `(comm)` field, which may hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time several processes use over a stretch of a workload.
#[derive(Debug)]
pub struct CpuMeter {
    pids: Vec<u32>,
    before: Vec<f64>,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> anyhow::Result<CpuMeter> {
        Ok(CpuMeter {
            pids: pids.to_vec(),
            before: pids
                .iter()
                .map(|&p| cpu_seconds(p))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// Seconds of CPU each process used since `start`, in the order given.
    pub fn used(&self) -> anyhow::Result<Vec<f64>> {
        self.pids
            .iter()
            .zip(&self.before)
            .map(|(&p, before)| Ok(cpu_seconds(p)? - before))
            .collect()
    }
}

/// The 1-minute load average: how busy the (shared, noisy) machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (rota bench) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
    }

    #[test]
    fn memory_reads_vmrss_and_vmhwm_in_mib() {
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        let m = parse_memory(status).unwrap();
        assert_eq!(m.rss_mib, 10.0);
        assert_eq!(m.peak_rss_mib, 20.0);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let pid = std::process::id();
        assert!(memory(pid).unwrap().rss_mib > 0.0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }
}
