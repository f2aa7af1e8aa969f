//! Chapter 7: the memory hierarchy, measured. How many bytes per second one core (and every
//! core at once) can read from its L1, its L2, the L3 and memory, with the read-bandwidth
//! kernel of `kernels::memory`, on buffers sized from the cache sizes `cpuid` reports.

use super::timing::{TimingSettings, time_fastest_call};
use crate::kernels::cache::{CacheKind, CacheLevel, data_caches};
use crate::kernels::memory::{bytes_read, read_sum};
use crate::kernels::{Isa, Kernels};
use crate::tensor::AlignedVec;
use serde::Serialize;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

/// Each timed call reads at least this many bytes, so that the clock's own cost (tens of
/// nanoseconds) is lost in it.
const BYTES_PER_CALL: usize = 4 << 20;

/// Strides of the memory mountain, in vectors: 1 reads everything, 8 one vector in eight.
pub const MOUNTAIN_STRIDES: [usize; 4] = [1, 2, 4, 8];

/// Sizes assumed when the CPU does not describe its caches.
const FALLBACK_SIZES: [usize; 3] = [32 << 10, 512 << 10, 8 << 20];

// ANCHOR: level
/// The read bandwidth of one level of the hierarchy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelBandwidth {
    /// `l1`, `l2`, `l3` or `dram`.
    pub name: &'static str,
    /// The buffer each thread reads: half the level's size for a cache (the other half
    /// leaves room for the stack, the page tables and the lines of other levels), four times
    /// the L3 for memory.
    pub bytes: usize,
    /// GB/s (10^9 bytes per second) on one thread.
    pub gbs: f64,
    /// GB/s of all threads together, each reading its own buffer (of `bytes`, or of its share
    /// of a shared cache).
    pub gbs_all_threads: f64,
}
// ANCHOR_END: level

/// One point of the memory mountain: a buffer size, a stride, and the bandwidth one thread
/// gets reading one vector every `stride`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MountainPoint {
    pub bytes: usize,
    pub stride: usize,
    pub gbs: f64,
}

/// Everything measured about the memory side of the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Memory {
    /// The instruction set of the read kernel (the best available).
    pub isa: Isa,
    pub threads: usize,
    pub caches: Vec<CacheLevel>,
    /// L1, L2, L3 (when the CPU has one) and memory.
    pub levels: Vec<LevelBandwidth>,
    pub mountain: Vec<MountainPoint>,
}

impl Memory {
    /// The level called `name` (`l1`, `l2`, `l3`, `dram`).
    pub fn level(&self, name: &str) -> Option<&LevelBandwidth> {
        self.levels.iter().find(|l| l.name == name)
    }

    /// The size of the cache called `name` (`l1`..`l3`), if the CPU has it.
    pub fn cache_bytes(&self, name: &str) -> Option<usize> {
        let level = name.strip_prefix('l')?.parse::<u8>().ok()?;
        self.caches.iter().find(|c| c.level == level).map(|c| c.bytes)
    }

    /// The report's `"memory"` object.
    pub fn to_json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct CacheJson {
            level: u8,
            kind: &'static str,
            bytes: usize,
            ways: usize,
            sets: usize,
            line_bytes: usize,
            shared_by: usize,
        }
        #[derive(Serialize)]
        struct MemoryJson<'a> {
            isa: &'static str,
            threads: usize,
            caches: Vec<CacheJson>,
            l1: Option<&'a LevelBandwidth>,
            l2: Option<&'a LevelBandwidth>,
            l3: Option<&'a LevelBandwidth>,
            dram: Option<&'a LevelBandwidth>,
            mountain: &'a [MountainPoint],
        }
        let caches = self
            .caches
            .iter()
            .map(|c| CacheJson {
                level: c.level,
                kind: match c.kind {
                    CacheKind::Data => "data",
                    CacheKind::Instruction => "instruction",
                    CacheKind::Unified => "unified",
                },
                bytes: c.bytes,
                ways: c.ways,
                sets: c.sets,
                line_bytes: c.line_bytes,
                shared_by: c.shared_by,
            })
            .collect();
        let json = MemoryJson {
            isa: self.isa.name(),
            threads: self.threads,
            caches,
            l1: self.level("l1"),
            l2: self.level("l2"),
            l3: self.level("l3"),
            dram: self.level("dram"),
            mountain: &self.mountain,
        };
        serde_json::to_value(json).unwrap_or(serde_json::Value::Null)
    }
}

/// The sizes of L1, L2 and L3 (0 for a level the CPU lacks), from `caches`, or common sizes
/// when the list is empty.
pub fn cache_sizes(caches: &[CacheLevel]) -> [usize; 3] {
    if caches.is_empty() {
        return FALLBACK_SIZES;
    }
    [1, 2, 3].map(|level| caches.iter().find(|c| c.level == level).map_or(0, |c| c.bytes))
}

// ANCHOR: measure_memory
/// Measures the four levels on one thread and on `threads` threads, then the mountain (every
/// size from 16 KiB to the memory buffer, doubling, at each of [`MOUNTAIN_STRIDES`]) on one
/// thread with shorter runs. `progress` is called before each measurement with what it is.
pub fn measure_memory(
    k: &Kernels,
    threads: usize,
    settings: &TimingSettings,
    mut progress: impl FnMut(&str),
) -> Memory {
    let caches = data_caches();
    let [l1, l2, l3] = cache_sizes(&caches);
    let threads = threads.max(1);
    let dram = 4 * l3.max(l2).max(8 << 20);
    // Buffers per thread when all threads read: private caches (shared by no more than two
    // threads of one core) keep their size, a shared L3 is divided among the threads.
    let l3_shared = caches.iter().find(|c| c.level == 3).map_or(threads, |c| c.shared_by.clamp(1, threads));
    let mut plan = vec![("l1", l1 / 2, l1 / 2), ("l2", l2 / 2, l2 / 2)];
    if l3 > 0 {
        plan.push(("l3", l3 / 2, l3 / 2 / l3_shared));
    }
    plan.push(("dram", dram, dram));
    let levels = plan
        .into_iter()
        .map(|(name, bytes, bytes_all)| {
            progress(&format!("memory: {name}"));
            LevelBandwidth {
                name,
                bytes,
                gbs: one_thread_gbs(k, bytes, 1, settings),
                gbs_all_threads: all_threads_gbs(k, bytes_all, threads, settings),
            }
        })
        .collect();
    let short = TimingSettings { min_run_seconds: (settings.min_run_seconds / 6.0).max(0.01), runs: 3 };
    let mut mountain = Vec::new();
    let mut bytes = 16 << 10;
    while bytes <= dram {
        progress(&format!("memory mountain: {} KiB", bytes >> 10));
        for stride in MOUNTAIN_STRIDES {
            mountain.push(MountainPoint { bytes, stride, gbs: one_thread_gbs(k, bytes, stride, &short) });
        }
        bytes *= 2;
    }
    Memory { isa: k.isa(), threads, caches, levels, mountain }
}
// ANCHOR_END: measure_memory

// ANCHOR: one_thread
/// GB/s of `read_sum` over a buffer of `bytes`, read again and again (after a first read that
/// brings it into whatever level holds it): the fastest call of each run, the best run.
fn one_thread_gbs(k: &Kernels, bytes: usize, stride: usize, settings: &TimingSettings) -> f64 {
    let data = filled(bytes);
    let per_read = bytes_read(data.len(), k.isa().lanes(), stride);
    let reads = BYTES_PER_CALL.div_ceil(bytes).max(1);
    let timing = time_fastest_call(settings, || {
        for _ in 0..reads {
            black_box(read_sum(k, black_box(&data), stride));
        }
    });
    (reads * per_read) as f64 / timing.min_seconds * 1e-9
}
// ANCHOR_END: one_thread

/// GB/s of `threads` threads, each reading its own buffer of `bytes`, started together at a
/// barrier: the bytes of all over the time from the first start to the last finish, best of
/// `settings.runs` runs of about `settings.min_run_seconds`.
fn all_threads_gbs(k: &Kernels, bytes: usize, threads: usize, settings: &TimingSettings) -> f64 {
    let probe = filled(bytes);
    let per_read = bytes_read(probe.len(), k.isa().lanes(), 1);
    // How many reads make a run, from one thread's speed.
    let start = Instant::now();
    let mut calibration = 0;
    while calibration == 0 || start.elapsed().as_secs_f64() < 0.02 {
        black_box(read_sum(k, black_box(&probe), 1));
        calibration += 1;
    }
    let per_read_seconds = start.elapsed().as_secs_f64() / f64::from(calibration);
    let reads = ((settings.min_run_seconds / per_read_seconds).ceil() as usize).max(1);
    drop(probe);
    let barrier = Barrier::new(threads);
    let mut best = 0.0f64;
    for _ in 0..settings.runs.max(1) {
        let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        // Each thread fills its own buffer: its pages are placed near its core.
                        let data = filled(bytes);
                        black_box(read_sum(k, &data, 1));
                        barrier.wait();
                        let begin = Instant::now();
                        for _ in 0..reads {
                            black_box(read_sum(k, black_box(&data), 1));
                        }
                        (begin, Instant::now())
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().ok()).collect()
        });
        let (Some(first), Some(last)) = (spans.iter().map(|s| s.0).min(), spans.iter().map(|s| s.1).max()) else {
            continue;
        };
        let seconds = (last - first).as_secs_f64();
        best = best.max((spans.len() * reads * per_read) as f64 / seconds * 1e-9);
    }
    best
}

/// A buffer of `bytes` (at least one float) of small values, every page written once.
fn filled(bytes: usize) -> AlignedVec {
    let mut data = AlignedVec::zeros((bytes / 4).max(1));
    for (i, x) in data.iter_mut().enumerate() {
        *x = (i % 7) as f32;
    }
    data
}
