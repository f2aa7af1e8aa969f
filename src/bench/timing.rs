//! How long a call takes, and whether the machine let us measure it fairly.
//!
//! A benchmark on a shared machine measures two things: the code, and whatever else the
//! machine was doing. We cannot stop the rest, but we can see it. Linux counts, for every
//! thread, the time it spent on a CPU and the time it spent ready to run but waiting for one
//! (`/proc/thread-self/schedstat`), and for the whole machine the time every CPU spent busy
//! (`/proc/stat`). A measurement during which our thread got its CPU for less than the whole
//! wall-clock time, or during which other programs kept the other cores busy (they share the
//! caches, the memory bus and the clock budget with us), is flagged.

use std::time::Instant;

/// How long and how often to repeat a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingSettings {
    /// Each run repeats the call until at least this long has passed (at least once).
    pub min_run_seconds: f64,
    /// Timed runs, after one untimed warm-up run of the same length.
    pub runs: usize,
}

impl Default for TimingSettings {
    fn default() -> Self {
        TimingSettings { min_run_seconds: 0.3, runs: 5 }
    }
}

/// What a measurement found: the seconds of one call, and how trustworthy that figure is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median over the runs of the seconds per call.
    pub seconds: f64,
    /// Fastest and slowest run, seconds per call.
    pub min_seconds: f64,
    pub max_seconds: f64,
    /// Calls in each run, and timed runs.
    pub calls_per_run: u64,
    pub runs: usize,
    /// The lowest share of wall-clock time our thread spent on a CPU in any run (1.0: never
    /// waited), when the system reports it.
    pub cpu_fraction: Option<f64>,
    /// CPU cores' worth of other work the machine did while we measured (0.0: none), when
    /// the system reports it.
    pub other_load: Option<f64>,
}

impl Timing {
    /// `(slowest - fastest) / median`: 0.02 means the runs agreed within 2 %.
    pub fn spread(&self) -> f64 {
        (self.max_seconds - self.min_seconds) / self.seconds
    }

    /// Whether the figure may be off because of the machine rather than the code.
    pub fn noise(&self) -> Option<Noise> {
        Noise::judge(self.cpu_fraction, self.other_load, self.spread())
    }
}

/// Why a measurement is suspect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    /// Our thread waited for a CPU for this share of the time.
    Preempted(f64),
    /// Other programs used this many cores meanwhile.
    BusyMachine(f64),
    /// The runs disagreed by this much (relative to the median).
    Unsteady(f64),
}

impl Noise {
    /// Below this share of wall-clock time on a CPU, the thread was preempted.
    pub const MIN_CPU_FRACTION: f64 = 0.95;
    /// Above this many cores of other work, the machine was busy.
    pub const MAX_OTHER_LOAD: f64 = 0.2;
    /// Above this spread between runs, the figure is unsteady.
    pub const MAX_SPREAD: f64 = 0.10;

    /// Which of the three reasons this is: 0, 1 or 2 in the order above.
    pub fn kind(&self) -> usize {
        match self {
            Noise::Preempted(_) => 0,
            Noise::BusyMachine(_) => 1,
            Noise::Unsteady(_) => 2,
        }
    }

    /// How bad it was: the share of time waiting, the cores of other work, or the spread.
    pub fn amount(&self) -> f64 {
        match *self {
            Noise::Preempted(x) | Noise::BusyMachine(x) | Noise::Unsteady(x) => x,
        }
    }

    /// The first reason (in the order above) to distrust a measurement, if any.
    pub fn judge(cpu_fraction: Option<f64>, other_load: Option<f64>, spread: f64) -> Option<Noise> {
        if let Some(f) = cpu_fraction.filter(|&f| f < Self::MIN_CPU_FRACTION) {
            return Some(Noise::Preempted(1.0 - f));
        }
        if let Some(load) = other_load.filter(|&l| l > Self::MAX_OTHER_LOAD) {
            return Some(Noise::BusyMachine(load));
        }
        (spread > Self::MAX_SPREAD).then_some(Noise::Unsteady(spread))
    }
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Noise::Preempted(share) => write!(f, "waited for a CPU {:.0} % of the time", 100.0 * share),
            Noise::BusyMachine(load) => write!(f, "other programs kept {load:.1} cores busy"),
            Noise::Unsteady(spread) => write!(f, "runs differed by {:.0} %", 100.0 * spread),
        }
    }
}

// ANCHOR: time_calls
/// Times `call`: one warm-up run (which also sets how many calls a run makes, enough to last
/// `min_run_seconds`), then `runs` timed runs. Reports the median over the runs of the mean
/// seconds per call.
pub fn time_calls(settings: &TimingSettings, call: impl FnMut()) -> Timing {
    time_runs(settings, PerRun::Mean, call)
}

/// Like [`time_calls`], but each run counts only its fastest call. For short calls that always
/// do the same work (the peak loops), the fastest call is one that nothing interrupted: on a
/// busy machine it still shows what the core can do.
pub fn time_fastest_call(settings: &TimingSettings, call: impl FnMut()) -> Timing {
    time_runs(settings, PerRun::Fastest, call)
}

/// What one run reports: the mean seconds of its calls, or the fastest call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PerRun {
    Mean,
    Fastest,
}

fn time_runs(settings: &TimingSettings, per_run: PerRun, mut call: impl FnMut()) -> Timing {
    let warm_up = Instant::now();
    let mut calls = 0u64;
    while calls == 0 || warm_up.elapsed().as_secs_f64() < settings.min_run_seconds {
        call();
        calls += 1;
    }
    let per_call = warm_up.elapsed().as_secs_f64() / calls as f64;
    let calls_per_run = ((settings.min_run_seconds / per_call).ceil() as u64).max(1);

    let machine_before = MachineCpu::read();
    let mut seconds = Vec::with_capacity(settings.runs);
    let mut cpu_fraction: Option<f64> = None;
    for _ in 0..settings.runs.max(1) {
        let cpu_before = thread_cpu_seconds();
        let start = Instant::now();
        let mut fastest = f64::INFINITY;
        for _ in 0..calls_per_run {
            let call_start = Instant::now();
            call();
            fastest = fastest.min(call_start.elapsed().as_secs_f64());
        }
        let wall = start.elapsed().as_secs_f64();
        seconds.push(match per_run {
            PerRun::Mean => wall / calls_per_run as f64,
            PerRun::Fastest => fastest,
        });
        if let (Some(before), Some(after)) = (cpu_before, thread_cpu_seconds()) {
            let fraction = ((after - before) / wall).min(1.0);
            cpu_fraction = Some(cpu_fraction.map_or(fraction, |f| f.min(fraction)));
        }
    }
    let other_load = match (machine_before, MachineCpu::read()) {
        // Busy cores over the whole measurement, less the one we kept busy ourselves.
        (Some(before), Some(after)) => after.busy_cores_since(&before).map(|busy| (busy - 1.0).max(0.0)),
        _ => None,
    };
    let (min_seconds, median, max_seconds) = min_median_max(&mut seconds);
    Timing { seconds: median, min_seconds, max_seconds, calls_per_run, runs: seconds.len(), cpu_fraction, other_load }
}
// ANCHOR_END: time_calls

/// Smallest, median (the mean of the two middle values for an even count) and largest.
pub fn min_median_max(values: &mut [f64]) -> (f64, f64, f64) {
    assert!(!values.is_empty(), "no values");
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    (values[0], median, values[n - 1])
}

/// Seconds the calling thread has spent on a CPU, from `/proc/thread-self/schedstat` (Linux);
/// `None` elsewhere.
pub fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    parse_schedstat(&text).map(|(on_cpu_ns, _)| on_cpu_ns as f64 * 1e-9)
}

/// `/proc/<pid>/schedstat` holds three numbers: nanoseconds on a CPU, nanoseconds waiting
/// for one while ready to run, and the number of time slices.
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(on_cpu)), Some(Ok(waiting))) => Some((on_cpu, waiting)),
        _ => None,
    }
}

/// Time all CPUs of the machine spent busy and idle so far, in the kernel's clock ticks, from
/// the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineCpu {
    pub busy: u64,
    pub idle: u64,
    /// CPUs the machine has (the `cpuN` lines).
    pub cpus: usize,
}

impl MachineCpu {
    /// The machine's counters now (`None` if `/proc/stat` is not there or not understood).
    pub fn read() -> Option<MachineCpu> {
        MachineCpu::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// `cpu  user nice system idle iowait irq softirq steal ...`: idle and iowait are idle
    /// time; everything else, including `steal` (time the hypervisor gave our virtual CPU to
    /// someone else), is busy.
    pub fn parse(text: &str) -> Option<MachineCpu> {
        let mut lines = text.lines();
        let total = lines.next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = total.split_whitespace().take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
        if ticks.len() < 5 {
            return None;
        }
        let idle = ticks[3] + ticks[4];
        let busy = ticks.iter().sum::<u64>() - idle;
        let cpus =
            lines.filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count();
        Some(MachineCpu { busy, idle, cpus: cpus.max(1) })
    }

    /// Average number of busy CPUs between `before` and `self` (`None` if no time passed).
    pub fn busy_cores_since(&self, before: &MachineCpu) -> Option<f64> {
        let busy = self.busy.checked_sub(before.busy)? as f64;
        let idle = self.idle.checked_sub(before.idle)? as f64;
        (busy + idle > 0.0).then(|| self.cpus as f64 * busy / (busy + idle))
    }
}
