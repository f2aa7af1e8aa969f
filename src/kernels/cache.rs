//! Chapter 7: the shape of this CPU's caches, from the CPU itself.
//!
//! `cpuid` describes each cache: its level, its line size, its number of sets and of ways
//! (where in the cache a line may go; chapter 6, *fc1 and the cache*, shows why that matters).
//! AMD answers in leaf `0x8000_001D`, Intel in leaf 4, with the same layout. Where neither is
//! there (another architecture, an old CPU), Linux's `/sys/devices/system/cpu/cpu0/cache/` is
//! read instead.

/// What a cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    Data,
    Instruction,
    Unified,
}

// ANCHOR: cache_level
/// One cache as one core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLevel {
    /// 1 for L1, 2 for L2, ...
    pub level: u8,
    pub kind: CacheKind,
    pub bytes: usize,
    /// Places a line may go in its set (the associativity).
    pub ways: usize,
    pub sets: usize,
    pub line_bytes: usize,
    /// Logical CPUs sharing it (0 when not reported).
    pub shared_by: usize,
}
// ANCHOR_END: cache_level

impl CacheLevel {
    /// Addresses this many bytes apart fall into the same set: `sets * line_bytes`
    /// (4 KiB for a 48 KiB, 12-way L1 of 64-byte lines).
    pub fn alias_bytes(&self) -> usize {
        self.sets * self.line_bytes
    }
}

/// The data and unified caches of this CPU, L1 first; empty if neither `cpuid` nor Linux
/// says.
pub fn data_caches() -> Vec<CacheLevel> {
    let mut caches = from_cpuid();
    if caches.is_empty() {
        caches = from_sysfs(std::path::Path::new("/sys/devices/system/cpu/cpu0/cache"));
    }
    caches.retain(|c| c.kind != CacheKind::Instruction);
    caches.sort_by_key(|c| c.level);
    caches
}

/// The data or unified cache of `level` (1, 2, 3), if this CPU has one.
pub fn data_cache(level: u8) -> Option<CacheLevel> {
    data_caches().into_iter().find(|c| c.level == level)
}

// ANCHOR: cpuid
/// Decodes one cache descriptor of `cpuid` leaf 4 (Intel) or `0x8000_001D` (AMD): `None` for
/// the descriptor that ends the list (type 0).
///
/// ```text
/// eax[4:0]  type (1 data, 2 instruction, 3 unified)   eax[7:5]   level
/// eax[25:14] logical CPUs sharing it, minus 1
/// ebx[11:0] line size - 1   ebx[21:12] partitions - 1   ebx[31:22] ways - 1
/// ecx       sets - 1
/// ```
pub fn decode_cpuid_cache(eax: u32, ebx: u32, ecx: u32) -> Option<CacheLevel> {
    let kind = match eax & 0x1f {
        1 => CacheKind::Data,
        2 => CacheKind::Instruction,
        3 => CacheKind::Unified,
        _ => return None,
    };
    let line_bytes = (ebx & 0xfff) as usize + 1;
    let partitions = ((ebx >> 12) & 0x3ff) as usize + 1;
    let ways = (ebx >> 22) as usize + 1;
    let sets = ecx as usize + 1;
    Some(CacheLevel {
        level: ((eax >> 5) & 0x7) as u8,
        kind,
        bytes: ways * partitions * line_bytes * sets,
        ways,
        sets,
        line_bytes,
        shared_by: ((eax >> 14) & 0xfff) as usize + 1,
    })
}
// ANCHOR_END: cpuid

#[cfg(target_arch = "x86_64")]
fn from_cpuid() -> Vec<CacheLevel> {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 0 gives the highest basic leaf and the vendor; 0x8000_0000 the highest extended
    // leaf. `cpuid` exists on every x86-64 CPU and only reads.
    let basic = __cpuid_count(0, 0);
    let extended = __cpuid_count(0x8000_0000, 0);
    let amd = [basic.ebx, basic.edx, basic.ecx] == [0x6874_7541, 0x6974_6e65, 0x444d_4163]; // "AuthenticAMD"
    // AMD's leaf 0x8000_001D exists when the topology extensions are (leaf 0x8000_0001, ecx bit 22).
    let topology = extended.eax >= 0x8000_001D && __cpuid_count(0x8000_0001, 0).ecx & (1 << 22) != 0;
    let leaf = match (amd, topology) {
        (true, true) => 0x8000_001D,
        (false, _) if basic.eax >= 4 => 4,
        _ => return Vec::new(),
    };
    // Sixteen descriptors is more than any CPU has; the list ends with a type-0 one.
    (0..16)
        .map_while(|sub| {
            let r = __cpuid_count(leaf, sub);
            decode_cpuid_cache(r.eax, r.ebx, r.ecx)
        })
        .collect()
}

#[cfg(not(target_arch = "x86_64"))]
fn from_cpuid() -> Vec<CacheLevel> {
    Vec::new()
}

/// Reads `index*/{level,type,size,ways_of_associativity,coherency_line_size,number_of_sets}`.
fn from_sysfs(dir: &std::path::Path) -> Vec<CacheLevel> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut caches = Vec::new();
    for entry in entries.flatten() {
        let read = |name: &str| std::fs::read_to_string(entry.path().join(name)).unwrap_or_default().trim().to_string();
        let number = |name: &str| read(name).parse::<usize>().ok();
        let kind = match read("type").as_str() {
            "Data" => CacheKind::Data,
            "Instruction" => CacheKind::Instruction,
            "Unified" => CacheKind::Unified,
            _ => continue,
        };
        let bytes = parse_size(&read("size"));
        let (Some(level), Some(bytes)) = (number("level"), bytes) else { continue };
        let shared_by = read("shared_cpu_list").split(',').map(range_len).sum();
        caches.push(CacheLevel {
            level: level as u8,
            kind,
            bytes,
            ways: number("ways_of_associativity").unwrap_or(0),
            sets: number("number_of_sets").unwrap_or(0),
            line_bytes: number("coherency_line_size").unwrap_or(64),
            shared_by,
        });
    }
    caches
}

/// `48K`, `1024K`, `32M`, `512` to bytes.
fn parse_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.strip_suffix('K') {
        Some(d) => (d, 1 << 10),
        None => match text.strip_suffix('M') {
            Some(d) => (d, 1 << 20),
            None => (text, 1),
        },
    };
    digits.parse::<usize>().ok().map(|n| n * unit)
}

/// `0-3` is 4 CPUs, `5` one, anything else none.
fn range_len(part: &str) -> usize {
    match part.split_once('-') {
        Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
            (Ok(a), Ok(b)) if b >= a => b - a + 1,
            _ => 0,
        },
        None => usize::from(part.parse::<usize>().is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zen 5's L1 data cache as `cpuid 0x8000001D` subleaf 0 gives it: 48 KiB, 12 ways, 64
    /// sets of 64-byte lines, one core (2 threads) sharing it.
    #[test]
    fn decodes_a_cpuid_descriptor() {
        let eax = 1 | (1 << 5) | (1 << 14); // data, level 1, shared by 2
        let ebx = 63 | (11 << 22); // 64-byte lines, one partition, 12 ways
        let l1 = decode_cpuid_cache(eax, ebx, 63).unwrap();
        assert_eq!(
            l1,
            CacheLevel {
                level: 1,
                kind: CacheKind::Data,
                bytes: 48 << 10,
                ways: 12,
                sets: 64,
                line_bytes: 64,
                shared_by: 2
            }
        );
        assert_eq!(l1.alias_bytes(), 4096);
        assert_eq!(decode_cpuid_cache(0, ebx, 63), None, "type 0 ends the list");
    }

    #[test]
    fn parses_linux_sizes_and_cpu_lists() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("big"), None);
        assert_eq!(range_len("0-3"), 4);
        assert_eq!(range_len("5"), 1);
        assert_eq!(range_len("x"), 0);
    }

    /// Where Linux lists the caches too, `cpuid` and Linux agree on each level's size and ways.
    #[test]
    fn cpuid_agrees_with_linux() {
        let linux = from_sysfs(std::path::Path::new("/sys/devices/system/cpu/cpu0/cache"));
        let cpuid = from_cpuid();
        if linux.is_empty() || cpuid.is_empty() {
            eprintln!("skipping: the caches are not listed both ways here");
            return;
        }
        for c in &cpuid {
            let l = linux.iter().find(|l| l.level == c.level && l.kind == c.kind).expect("Linux lists the same caches");
            assert_eq!((c.bytes, c.ways, c.line_bytes), (l.bytes, l.ways, l.line_bytes), "L{} {:?}", c.level, c.kind);
        }
    }
}
