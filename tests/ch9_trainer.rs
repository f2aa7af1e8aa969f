//! Chapter 9: the cat/dog trainer on small folders of generated photos: a stopped or
//! interrupted run resumes to exactly the weights of one that never stopped, the thread count
//! changes nothing, odd and broken files are skipped and counted, a diverging run stops with
//! advice, and the photos can be fetched from a server.
mod common;

use common::http::Server;
use common::images::{cmyk_jpeg, gray_jpeg, huge_png, jpeg, png, rgb_pixels};
use image::ExtendedColorType;
use simd_cnn::checkpoint;
use simd_cnn::data::catdog::{ARCHIVE_NAME, CatDog, OpenOptions, fetch};
use simd_cnn::data::download::DownloadOptions;
use simd_cnn::train::LrSchedule;
use simd_cnn::trainer::{Config, Event, Outcome, TrainError, Trainer};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A photo of class `dog` (1) or cat (0): dogs are bright on the left, cats on the right, with a
/// little texture so that no two photos are alike.
fn photo(dog: bool, k: u32) -> Vec<u8> {
    jpeg(48, 40, move |x, y| {
        let bright = (x < 24) == dog;
        let base = if bright { 200 } else { 60 };
        let t = ((x * 7 + y * 13 + k * 29) % 23) as u8;
        [base + t, base / 2 + t, base / 3 + t]
    })
}

/// `per_class` cats and `per_class` dogs in `dir/PetImages`.
fn pet_folder(dir: &Path, per_class: u32) {
    for (class, dog) in [("Cat", false), ("Dog", true)] {
        let folder = dir.join("PetImages").join(class);
        fs::create_dir_all(&folder).unwrap();
        for k in 0..per_class {
            fs::write(folder.join(format!("{k}.jpg")), photo(dog, k)).unwrap();
        }
    }
}

fn open(dir: &Path) -> CatDog {
    CatDog::open_with(dir, &OpenOptions { progress: false, ..OpenOptions::default() }).unwrap()
}

/// A small run: 40 photos, batches of 4, momentum and augmentation (so that the velocities
/// and the augmentation streams must be restored too), saved in `dir`.
fn config(dir: &Path, name: &str) -> Config {
    Config {
        epochs: 2,
        batch_size: 4,
        lr: 0.01,
        momentum: 0.9,
        augment: true,
        threads: 2,
        save: Some(dir.join(name)),
        ..Config::default()
    }
}

fn weights(trainer: &Trainer) -> Vec<Vec<f32>> {
    trainer.model().params().iter().map(|p| p.value.as_slice().to_vec()).collect()
}

fn quiet(_: Event) {}

/// Runs `trainer`, raising the stop flag after step `stop_after` of epoch `epoch` if given.
fn run(trainer: &mut Trainer, stop_at: Option<(usize, usize)>) -> Outcome {
    let stop = AtomicBool::new(false);
    trainer
        .run(&stop, &mut |event| {
            if let Event::Step { epoch, batch, .. } = event
                && Some((epoch, batch)) == stop_at
            {
                stop.store(true, Ordering::Relaxed);
            }
        })
        .unwrap()
}

#[test]
fn a_run_stopped_mid_epoch_resumes_to_the_same_weights_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 20);
    let mut straight = Trainer::new(config(tmp.path(), "a.safetensors"), open(tmp.path())).unwrap();
    assert_eq!(run(&mut straight, None), Outcome::Finished);

    let cfg = config(tmp.path(), "b.safetensors");
    let mut first = Trainer::new(cfg.clone(), open(tmp.path())).unwrap();
    assert_eq!(run(&mut first, Some((2, 3))), Outcome::Stopped { epoch: 2, batch: 3 });
    assert_ne!(weights(&first), weights(&straight), "the stopped run must not be finished already");
    drop(first);
    let mut resumed = Trainer::resume(&tmp.path().join("b.safetensors"), cfg, open(tmp.path())).unwrap();
    assert_eq!((resumed.state().epoch, resumed.state().batch), (1, 3));
    assert_eq!(run(&mut resumed, None), Outcome::Finished);

    assert!(weights(&resumed) == weights(&straight), "the resumed run ended with other weights");
    assert!(resumed.optimizer().velocity() == straight.optimizer().velocity(), "other velocities");
    let losses = |t: &Trainer| t.state().history.iter().map(|m| (m.train_loss, m.val_accuracy)).collect::<Vec<_>>();
    assert_eq!(losses(&resumed), losses(&straight));
}

#[test]
fn a_run_killed_after_an_epoch_loses_nothing_but_the_epoch_it_was_in() {
    // A run killed outright leaves the checkpoint of its last finished epoch: resuming from it
    // (here: a run that was only asked for one epoch) ends where the uninterrupted run ends.
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 20);
    let constant = |name| Config { momentum: 0.0, ..config(tmp.path(), name) };
    let mut straight = Trainer::new(constant("a.safetensors"), open(tmp.path())).unwrap();
    run(&mut straight, None);
    let mut one = Trainer::new(Config { epochs: 1, ..constant("b.safetensors") }, open(tmp.path())).unwrap();
    run(&mut one, None);
    let mut rest =
        Trainer::resume(&tmp.path().join("b.safetensors"), constant("b.safetensors"), open(tmp.path())).unwrap();
    run(&mut rest, None);
    assert!(weights(&rest) == weights(&straight));
    // And the file on disk holds what the trainer had.
    let saved = checkpoint::load_weights(tmp.path().join("b.safetensors"), None).unwrap();
    let on_disk: Vec<Vec<f32>> = saved.params().iter().map(|p| p.value.as_slice().to_vec()).collect();
    assert!(on_disk == weights(&rest));
}

#[test]
fn the_number_of_threads_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 12);
    let mut runs = [1, 3].map(|threads| {
        let cfg = Config { threads, epochs: 1, save: None, ..config(tmp.path(), "") };
        Trainer::new(cfg, open(tmp.path())).unwrap()
    });
    for t in &mut runs {
        run(t, None);
    }
    assert!(weights(&runs[0]) == weights(&runs[1]));
}

#[test]
fn the_network_learns_the_generated_photos() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 24);
    let cfg = Config { epochs: 4, augment: false, save: None, ..config(tmp.path(), "") };
    let mut trainer = Trainer::new(cfg, open(tmp.path())).unwrap();
    run(&mut trainer, None);
    let last = trainer.state().history.last().unwrap();
    assert!(last.val_accuracy.unwrap() >= 0.9, "validation accuracy {:?}", last.val_accuracy);
    assert!(last.train_loss < trainer.state().history[0].train_loss);
}

#[test]
fn odd_and_broken_files_are_skipped_and_counted_and_training_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 10);
    let cats = tmp.path().join("PetImages/Cat");
    let dogs = tmp.path().join("PetImages/Dog");
    let truncated = photo(true, 99);
    let odd: [(PathBuf, Vec<u8>); 7] = [
        (cats.join("100.jpg"), Vec::new()),
        (cats.join("101.jpg"), truncated[..truncated.len() / 2].to_vec()),
        (cats.join("102.jpg"), b"<html>not a photo</html>".to_vec()),
        (cats.join("103.jpg"), huge_png()),
        (dogs.join("100.jpg"), gray_jpeg(50, 40, 200)),
        (dogs.join("101.jpg"), cmyk_jpeg()),
        (dogs.join("102.jpg"), png(30, 20, &rgb_pixels(30, 20, |x, _| [x as u8 * 8, 90, 30]), ExtendedColorType::Rgb8)),
    ];
    for (path, bytes) in &odd {
        fs::File::create(path).unwrap().write_all(bytes).unwrap();
    }
    let data = open(tmp.path());
    assert_eq!(data.skipped().total(), 4, "empty, truncated, not an image, too large");
    assert_eq!(data.len(), 20 + 3, "grayscale, CMYK and a PNG named .jpg are photos");
    let cfg = Config { epochs: 1, save: None, ..config(tmp.path(), "") };
    let mut trainer = Trainer::new(cfg, data).unwrap();
    assert_eq!(run(&mut trainer, None), Outcome::Finished);
    assert!(trainer.state().history[0].train_loss.is_finite());
}

#[test]
fn a_diverging_run_stops_and_says_what_to_try() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 10);
    let cfg = Config { lr: 5e4, momentum: 0.0, save: None, ..config(tmp.path(), "") };
    let mut trainer = Trainer::new(cfg, open(tmp.path())).unwrap();
    let err = trainer.run(&AtomicBool::new(false), &mut quiet).unwrap_err();
    assert!(matches!(err, TrainError::Diverged { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("try a smaller --lr") && !message.contains('\n'), "{message}");
}

#[test]
fn a_new_run_never_replaces_a_checkpoint_unasked() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 10);
    let cfg = Config { epochs: 1, ..config(tmp.path(), "run.safetensors") };
    run(&mut Trainer::new(cfg.clone(), open(tmp.path())).unwrap(), None);
    let path = tmp.path().join("run.safetensors");
    let before = (fs::read(&path).unwrap(), fs::read(checkpoint::state_path(&path)).unwrap());

    // Forgetting --resume: refused at once, with the ways forward named.
    let err = Trainer::new(cfg.clone(), open(tmp.path())).err().expect("refused");
    let message = err.to_string();
    assert!(matches!(err, TrainError::WouldReplace { .. }), "{message}");
    assert!(message.contains("--resume") && message.contains("--overwrite") && !message.contains('\n'), "{message}");
    // The state file alone is a checkpoint too.
    fs::remove_file(&path).unwrap();
    assert!(matches!(Trainer::new(cfg.clone(), open(tmp.path())), Err(TrainError::WouldReplace { .. })));
    fs::write(&path, &before.0).unwrap();
    // Resuming another checkpoint into this one is the same question.
    let other = Config { epochs: 1, ..config(tmp.path(), "other.safetensors") };
    run(&mut Trainer::new(other.clone(), open(tmp.path())).unwrap(), None);
    let into_run = Config { epochs: 2, ..cfg.clone() };
    let err = Trainer::resume(&tmp.path().join("other.safetensors"), into_run, open(tmp.path())).err();
    assert!(matches!(err, Some(TrainError::WouldReplace { .. })), "{err:?}");
    assert!(before == (fs::read(&path).unwrap(), fs::read(checkpoint::state_path(&path)).unwrap()));

    // Asked to: the old checkpoint stays until the new run's first save replaces it.
    let mut trainer = Trainer::new(Config { overwrite: true, ..cfg }, open(tmp.path())).unwrap();
    assert!(before.0 == fs::read(&path).unwrap());
    run(&mut trainer, None);
    assert!(before.0 != fs::read(&path).unwrap());
}

#[test]
fn unwritable_outputs_are_refused_before_any_training() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 10);
    fs::create_dir(tmp.path().join("a folder.safetensors")).unwrap();
    for save in [
        tmp.path().join("missing/run.safetensors"),
        tmp.path().join("a folder.safetensors"),
        PathBuf::from("/proc/simd-cnn-run.safetensors"),
        PathBuf::from("/"),
    ] {
        let cfg = Config { save: Some(save.clone()), ..config(tmp.path(), "") };
        let err = Trainer::new(cfg, open(tmp.path())).err().unwrap_or_else(|| panic!("{}: accepted", save.display()));
        let message = err.to_string();
        assert!(matches!(err, TrainError::Unwritable { .. }), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
    assert!(!tmp.path().join("missing").exists());
}

#[test]
fn a_checkpoint_of_other_photos_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (small, large) = (tmp.path().join("small"), tmp.path().join("large"));
    pet_folder(&small, 10);
    pet_folder(&large, 16);
    let cfg = Config { epochs: 1, ..config(tmp.path(), "run.safetensors") };
    run(&mut Trainer::new(cfg.clone(), open(&small)).unwrap(), None);
    let more = Config { epochs: 2, ..cfg };
    let err = Trainer::resume(&tmp.path().join("run.safetensors"), more.clone(), open(&large)).err().expect("refused");
    assert!(err.to_string().contains("other photos"), "{err}");
    assert!(Trainer::resume(&tmp.path().join("run.safetensors"), more, open(&small)).is_ok());
}

// ANCHOR: sigkill
/// The child's side of [`sigkill_at_random_moments_never_costs_the_checkpoint`]: trains on the
/// photos in `$SIMD_CNN_KILL_DIR`, resuming its checkpoint when there is one, until it is killed.
#[test]
#[ignore = "run by sigkill_at_random_moments_never_costs_the_checkpoint in a child process"]
fn train_until_killed() {
    let Ok(dir) = std::env::var("SIMD_CNN_KILL_DIR") else { return };
    let dir = PathBuf::from(dir);
    let save = dir.join("run.safetensors");
    let cfg = Config { epochs: 1000, threads: 1, ..config(&dir, "run.safetensors") };
    let mut trainer = if checkpoint::state_path(&save).exists() {
        Trainer::resume(&save, cfg, open(&dir)).unwrap()
    } else {
        Trainer::new(cfg, open(&dir)).unwrap()
    };
    trainer.run(&AtomicBool::new(false), &mut quiet).unwrap();
}

#[test]
fn sigkill_at_random_moments_never_costs_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 6);
    open(tmp.path()); // the cache, built once
    let save = tmp.path().join("run.safetensors");
    let spawn = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "train_until_killed", "--ignored", "--test-threads=1"])
            .env("SIMD_CNN_KILL_DIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a child takes to start and save once, on this machine and kernel table (the
    // scalar one is ten times slower): the kills below fall anywhere in a few such periods.
    let started = std::time::Instant::now();
    let mut child = spawn();
    while !checkpoint::state_path(&save).exists() {
        assert!(started.elapsed().as_secs() < 600, "no checkpoint after 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let period = started.elapsed().as_secs_f64();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let (mut last_step, mut kills) = (0, 0);
    while kills < 12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let fraction = (rng % 1000) as f64 / 1000.0;
        std::thread::sleep(std::time::Duration::from_secs_f64(period * (0.2 + 1.8 * fraction)));
        child.kill().unwrap(); // SIGKILL: no handler runs, nothing is flushed
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "the child ended by itself ({status}) instead of being killed");
        kills += 1;
        let (_, _, state) = checkpoint::load(&save, None).unwrap_or_else(|e| panic!("after kill {kills}: {e}"));
        assert!(state.step >= last_step, "after kill {kills}: the checkpoint went back from step {last_step}");
        last_step = state.step;
        child = spawn();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(last_step > 0, "no checkpoint was ever saved: the kills came too early");
    // A last run from the checkpoint saves over any leftover of the kills.
    let cfg = Config {
        epochs: checkpoint::load(&save, None).unwrap().2.epoch + 1,
        threads: 1,
        ..config(tmp.path(), "run.safetensors")
    };
    run(&mut Trainer::resume(&save, cfg, open(tmp.path())).unwrap(), None);
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
// ANCHOR_END: sigkill

#[test]
fn resuming_with_other_settings_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 10);
    let cfg = Config { epochs: 1, ..config(tmp.path(), "c.safetensors") };
    let mut trainer = Trainer::new(cfg.clone(), open(tmp.path())).unwrap();
    run(&mut trainer, None);
    let other = Config { batch_size: 2, schedule: LrSchedule::Cosine, ..cfg };
    let err = Trainer::resume(&tmp.path().join("c.safetensors"), other, open(tmp.path())).err().expect("refused");
    let message = err.to_string();
    assert!(message.contains("--batch-size 4 (asked: 2)") && message.contains("--schedule constant"), "{message}");
}

#[test]
fn limit_takes_a_seeded_subset_and_the_split_keeps_both_classes() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 20);
    let cfg = |seed| Config { limit: Some(20), val_fraction: 0.25, seed, save: None, ..config(tmp.path(), "") };
    let a = Trainer::new(cfg(1), open(tmp.path())).unwrap();
    let split = a.split();
    assert_eq!(split.train.len() + split.val.len(), 20);
    assert!(split.train.iter().all(|i| !split.val.contains(i)));
    let labels = a.data().labels();
    for class in [0, 1] {
        assert!(split.val.iter().any(|&i| labels[i] == class), "class {class} missing from validation");
    }
    let b = Trainer::new(cfg(1), open(tmp.path())).unwrap();
    let c = Trainer::new(cfg(2), open(tmp.path())).unwrap();
    assert_eq!(a.split(), b.split());
    assert_ne!(a.split(), c.split());
}

#[test]
fn bad_settings_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    pet_folder(tmp.path(), 4);
    for (cfg, words) in [
        (Config { epochs: 0, ..Config::default() }, "--epochs"),
        (Config { val_fraction: 1.0, ..Config::default() }, "--val-fraction"),
        (Config { momentum: 1.5, ..Config::default() }, "--momentum"),
        (Config { batch_size: 64, ..Config::default() }, "fewer than one batch"),
        (Config { batch_size: usize::MAX, ..Config::default() }, "fewer than one batch"),
        (Config { epochs: usize::MAX, ..Config::default() }, "--epochs"),
        (Config { threads: 0, ..Config::default() }, "--threads"),
        (Config { threads: 1 << 20, ..Config::default() }, "--threads"),
        (Config { lr: f32::NAN, ..Config::default() }, "--lr"),
        (Config { val_fraction: f64::NAN, ..Config::default() }, "--val-fraction"),
    ] {
        let message = Trainer::new(cfg, open(tmp.path())).err().expect("refused").to_string();
        assert!(message.contains(words) && !message.contains('\n'), "{message}");
    }
}

/// A zip of the layout Microsoft publishes: photos, a `Thumbs.db` and a licence.
fn archive(photos_per_class: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default();
    for (class, dog) in [("Cat", false), ("Dog", true)] {
        for k in 0..photos_per_class {
            zip.start_file(format!("PetImages/{class}/{k}.jpg"), options).unwrap();
            zip.write_all(&photo(dog, k)).unwrap();
        }
        zip.start_file(format!("PetImages/{class}/Thumbs.db"), options).unwrap();
        zip.write_all(b"thumbnails").unwrap();
    }
    zip.start_file("MSR-LA - 3467.docx", options).unwrap();
    zip.write_all(b"licence").unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

#[test]
fn fetch_downloads_extracts_and_removes_the_archive() {
    let server = Server::start([("/pets.zip".to_string(), archive(5))]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("catdog");
    let options = DownloadOptions::default();
    let fetched = fetch(&server.url("/pets.zip"), &dir, &options).unwrap();
    assert_eq!(fetched.extracted.files, 10);
    assert!(!dir.join(ARCHIVE_NAME).exists(), "the archive is deleted once extracted");
    let data = open(&dir);
    assert_eq!((data.count(0), data.count(1)), (5, 5));
}

#[test]
fn a_damaged_archive_is_refused_and_no_photos_appear() {
    let mut bytes = archive(3);
    // Flip a byte inside the first photo's compressed data: its CRC-32 no longer matches.
    let at = bytes.windows(4).position(|w| w == [0xFF, 0xD8, 0xFF, 0xE0]).unwrap_or(200) + 40;
    bytes[at] ^= 0x55;
    let server = Server::start([("/pets.zip".to_string(), bytes)]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("catdog");
    let options = DownloadOptions::default();
    let err = fetch(&server.url("/pets.zip"), &dir, &options).unwrap_err();
    assert!(!err.to_string().contains('\n'), "{err}");
    assert!(!dir.join("PetImages").exists(), "a damaged archive must leave no PetImages behind");
}

#[test]
fn pictures_draw_each_filter_as_its_pattern_and_every_feature_map() {
    use simd_cnn::kernels::Kernels;
    use simd_cnn::model::CatDogCnn;
    use simd_cnn::trainer::{conv1_filters, feature_maps};
    let mut model = CatDogCnn::new(16, 16, 0);
    // Filter 0: red weights rising from the left column (-1) to the right one (+1), every other
    // weight 0: its tile must go from dark red on the left to bright red on the right.
    let w = model.conv1.weight.value.as_mut_slice(); // [ky, kx, c_in, c_out]
    for ky in 0..3 {
        for kx in 0..3 {
            for c in 0..3 {
                w[((ky * 3 + kx) * 3 + c) * 32] = if c == 0 { kx as f32 - 1.0 } else { 0.0 };
            }
        }
    }
    let scale = 4;
    let image = conv1_filters(&model, scale);
    assert_eq!((image.width(), image.height()), (8 * (12 + 2) + 2, 4 * (12 + 2) + 2));
    let at = |x: u32, y: u32| image.get_pixel(2 + x, 2 + y).0;
    assert_eq!(at(0, 5)[0], 0, "the left column is the smallest weight");
    assert_eq!(at(11, 5)[0], 255, "the right column is the largest");
    assert_eq!(at(11, 5)[1], at(0, 5)[1], "green does not change across the tile");

    let photo = vec![0.5f32; 16 * 16 * 3];
    let [m1, m2, m3] = feature_maps(&mut model, Kernels::best().unwrap(), &photo);
    assert_eq!((m1.width(), m1.height()), (8 * 18 + 2, 4 * 18 + 2), "32 maps of 16x16");
    assert_eq!((m2.width(), m2.height()), (8 * 10 + 2, 8 * 10 + 2), "64 maps of 8x8");
    assert_eq!((m3.width(), m3.height()), (16 * 6 + 2, 8 * 6 + 2), "128 maps of 4x4");
}
