//! Chapter 9: checkpoints (the two safetensors files of a run) and the training-curve picture.
//!
//! The files must round-trip bit for bit, resume a run exactly, be what the safetensors format
//! specifies byte for byte with PyTorch's `state_dict` names and shapes, load in Python's
//! `safetensors` (when the Python here has it), and every damaged or mismatched file must be one
//! clear error.
mod common;

use common::rand_vec;
use simd_cnn::checkpoint::{
    self, CheckpointError, checksum, encode, load, load_network, load_weights, load_weights_network, save,
    save_network, save_with, state_dict_shapes, state_path,
};
use simd_cnn::files::{Fault, Step};
use simd_cnn::kernels::{ConvAlgorithm, Kernels};
use simd_cnn::model::{CatDogCnn, Layer, Network};
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::layout::hwio_to_oihw;
use simd_cnn::train::{LrSchedule, Sgd};
use simd_cnn::trainer::{EpochMetrics, Hyperparameters, TrainState, training_curves};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `state_dict()` of the network in anchors/torch_cnn.py (named as in scripts/golden.py) for
/// 128 x 128 images, written out by hand from the layer definitions.
const PYTORCH_STATE_DICT: [(&str, &[usize]); 10] = [
    ("conv1.weight", &[32, 3, 3, 3]),
    ("conv1.bias", &[32]),
    ("conv2.weight", &[64, 32, 3, 3]),
    ("conv2.bias", &[64]),
    ("conv3.weight", &[128, 64, 3, 3]),
    ("conv3.bias", &[128]),
    ("fc1.weight", &[128, 32768]),
    ("fc1.bias", &[128]),
    ("fc2.weight", &[1, 128]),
    ("fc2.bias", &[1]),
];

const HYPER: Hyperparameters = Hyperparameters {
    batch_size: 4,
    augment: true,
    val_fraction: 0.1,
    epochs: 12,
    base_lr: 0.05,
    schedule: LrSchedule::Cosine,
    limit: Some(2000),
    conv: ConvAlgorithm::Direct,
    precision: simd_cnn::kernels::Precision::Fp32,
};

// -------------------------------------------------------------------------------------- helpers

/// A batch of 4 images (values in [0, 1)) and labels cat, dog, dog, cat.
fn batch(h: usize, w: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let x = rand_vec(4 * h * w * 3, seed).iter().map(|v| (v + 1.0) / 2.0).collect();
    (x, vec![0.0, 1.0, 1.0, 0.0])
}

fn train_step(k: &Kernels, model: &mut CatDogCnn, sgd: &mut Sgd, state: &mut TrainState, seed: u64) {
    let (h, w) = model.image_size();
    let (x, labels) = batch(h, w, seed);
    let stats = model.forward_backward(k, &x, &labels);
    sgd.step(k, &mut model.params_mut());
    state.record_batch(stats, labels.len());
}

/// A run after one finished epoch of two steps (with validation figures) and one step into the
/// second: history, velocities and a position in the middle of an epoch are all non-trivial.
fn trained(h: usize, w: usize, momentum: f32) -> (CatDogCnn, Sgd, TrainState) {
    let k = Kernels::best().unwrap();
    let mut model = CatDogCnn::new(h, w, 7);
    let mut sgd = Sgd::new(0.01, momentum);
    let mut state = TrainState::new(7, HYPER);
    for seed in 0..2 {
        train_step(k, &mut model, &mut sgd, &mut state, seed);
    }
    state.finish_epoch(Some(0.625), Some(0.5), 1.25);
    train_step(k, &mut model, &mut sgd, &mut state, 2);
    state.current_seconds = 0.375;
    (model, sgd, state)
}

/// A run from [`trained`], saved as `catdog.safetensors` in a fresh folder (which lives as long
/// as the returned guard).
fn trained_and_saved(h: usize, w: usize, momentum: f32) -> (tempfile::TempDir, PathBuf, (CatDogCnn, Sgd, TrainState)) {
    let dir = tempdir();
    let path = dir.path().join("catdog.safetensors");
    let (model, sgd, state) = trained(h, w, momentum);
    save(&path, &model, &sgd, &state).unwrap();
    (dir, path, (model, sgd, state))
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.as_slice().iter().map(|v| v.to_bits()).collect()
}

fn assert_same_network(a: &CatDogCnn, b: &CatDogCnn) {
    assert_eq!(a.image_size(), b.image_size());
    for ((name, pa), pb) in CatDogCnn::PARAM_NAMES.iter().zip(a.params()).zip(b.params()) {
        assert_eq!(pa.value.shape(), pb.value.shape(), "{name}: shape");
        assert!(bits(&pa.value) == bits(&pb.value), "{name}: values differ");
    }
}

fn assert_same_velocity(a: &Sgd, b: &Sgd) {
    assert_eq!(a.velocity().len(), b.velocity().len(), "number of velocities");
    for ((name, va), vb) in CatDogCnn::PARAM_NAMES.iter().zip(a.velocity()).zip(b.velocity()) {
        assert_eq!(va.shape(), vb.shape(), "{name}: velocity shape");
        assert!(bits(va) == bits(vb), "{name}: velocities differ");
    }
}

/// Our parameters in PyTorch's layout, under its names.
fn torch_params(model: &CatDogCnn) -> Vec<(&'static str, Tensor)> {
    CatDogCnn::PARAM_NAMES
        .iter()
        .zip(model.params())
        .map(|(&name, p)| (name, if p.value.shape().len() == 4 { hwio_to_oihw(&p.value) } else { p.value.clone() }))
        .collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The `__metadata__` of a safetensors file, read with the `safetensors` crate.
fn metadata(path: &Path) -> BTreeMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().clone().unwrap_or_default().into_iter().collect()
}

/// The error, which must be one line and name `path`.
fn error_of<T>(result: Result<T, CheckpointError>, path: &Path) -> CheckpointError {
    let Err(e) = result else { panic!("{}: loaded, but it should have been rejected", path.display()) };
    let message = e.to_string();
    println!("rejected: {message}");
    assert!(!message.contains('\n'), "not one line: {message}");
    assert!(message.contains(&path.display().to_string()), "does not name {}: {message}", path.display());
    e
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------------- round trips

#[test]
fn save_then_load_gives_back_every_bit() {
    let (dir, path, (model, sgd, state)) = trained_and_saved(16, 24, 0.9);
    assert!(state_path(&path).exists(), "the state file is beside the weights");

    let (model2, sgd2, state2) = load(&path, None).unwrap();
    assert_same_network(&model, &model2);
    assert_same_velocity(&sgd, &sgd2);
    assert_eq!((sgd.lr.to_bits(), sgd.momentum.to_bits()), (sgd2.lr.to_bits(), sgd2.momentum.to_bits()));
    assert_eq!(state, state2);
    assert_eq!((state2.epoch, state2.batch, state2.step, state2.history.len()), (1, 1, 3, 1));

    assert_same_network(&model, &load_weights(&path, Some((16, 24))).unwrap());
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2, "no temporary files are left behind");

    // The same network and state give the same bytes: the metadata keys are written sorted.
    let first = std::fs::read(&path).unwrap();
    save(&path, &model2, &sgd2, &state2).unwrap();
    assert!(first == std::fs::read(&path).unwrap(), "saving again changed the weights file");
}

#[test]
fn a_resumed_run_takes_the_same_next_step() {
    let k = Kernels::best().unwrap();
    let (_dir, path, (mut model, mut sgd, mut state)) = trained_and_saved(16, 16, 0.9);
    let (mut model2, mut sgd2, mut state2) = load(&path, Some((16, 16))).unwrap();

    train_step(k, &mut model, &mut sgd, &mut state, 3);
    train_step(k, &mut model2, &mut sgd2, &mut state2, 3);
    assert_same_network(&model, &model2);
    assert_same_velocity(&sgd, &sgd2);
    assert_eq!(state, state2);
    assert_ne!(state.step, 3, "the step was taken");
}

#[test]
fn without_momentum_the_state_holds_no_velocity() {
    let dir = tempdir();
    let path = dir.path().join("plain");
    let (model, sgd, state) = trained(8, 8, 0.0);
    assert!(sgd.velocity().is_empty());
    save(&path, &model, &sgd, &state).unwrap();
    assert_eq!(state_path(&path), dir.path().join("plain.state.safetensors"));
    let bytes = std::fs::read(state_path(&path)).unwrap();
    let mut names = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    names.sort();
    let mut weights: Vec<String> = CatDogCnn::PARAM_NAMES.iter().map(|n| n.to_string()).collect();
    weights.sort();
    assert_eq!(names, weights, "the state file holds the weights and no velocity");
    let (model2, sgd2, state2) = load(&path, None).unwrap();
    assert_same_network(&model, &model2);
    assert!(sgd2.velocity().is_empty());
    assert_eq!((sgd2.momentum, state2), (0.0, state));
}

#[test]
fn state_path_sits_beside_the_weights() {
    assert_eq!(state_path("runs/catdog.safetensors"), PathBuf::from("runs/catdog.state.safetensors"));
    assert_eq!(state_path("catdog.bin"), PathBuf::from("catdog.bin.state.safetensors"));
}

#[test]
fn state_dict_shapes_are_the_models_in_pytorch_layout() {
    for (h, w) in [(8, 8), (16, 24), (128, 128)] {
        let model = CatDogCnn::new(h, w, 1);
        let ours: Vec<(&str, Vec<usize>)> =
            torch_params(&model).into_iter().map(|(name, t)| (name, t.shape().to_vec())).collect();
        assert_eq!(ours, state_dict_shapes(h, w).to_vec(), "{h}x{w}");
    }
    let pytorch: Vec<(&str, Vec<usize>)> = PYTORCH_STATE_DICT.iter().map(|(n, s)| (*n, s.to_vec())).collect();
    assert_eq!(state_dict_shapes(128, 128).to_vec(), pytorch);
}

// ------------------------------------------------------------------------ the format, byte for byte

#[test]
fn the_weights_file_is_safetensors_byte_for_byte() {
    let dir = tempdir();
    let path = dir.path().join("catdog.safetensors");
    let k = Kernels::best().unwrap();
    let mut model = CatDogCnn::new(128, 128, 3);
    let mut sgd = Sgd::new(0.01, 0.9);
    let mut state = TrainState::new(3, HYPER);
    let (x, labels) = batch(128, 128, 5);
    model.forward_backward(k, &x[..2 * 128 * 128 * 3], &labels[..2]);
    sgd.step(k, &mut model.params_mut());
    state.finish_epoch(None, None, 2.0);
    save(&path, &model, &sgd, &state).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    // 8 bytes: the header's length n, a little-endian u64; the header is padded to a multiple of 8.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "the data must start 8-byte aligned");
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let json = header.trim_end_matches(' ');
    assert!(header.len() - json.len() < 8, "at most 7 spaces of padding");
    assert!(json.starts_with('{'), "the header must begin with {{");

    // The metadata: PyTorch's format tag and what a reader needs.
    let meta: BTreeMap<String, String> = metadata(&path);
    assert_eq!(meta["format"], "pt");
    assert_eq!((meta["image_height"].as_str(), meta["image_width"].as_str()), ("128", "128"));
    assert_eq!((meta["step"].as_str(), meta["simd_cnn_format"].as_str()), ("0", "2"));
    assert!(meta["description"].contains("[n, 3, 128, 128]"), "{}", meta["description"]);
    assert_eq!(meta["sha256"].len(), 64);

    // The header, rebuilt from the format's description: metadata first (keys sorted), then
    // every tensor in state_dict order, offsets counting from the start of the data, no gaps.
    let mut expected = format!("{{\"__metadata__\":{}", serde_json::to_string(&meta).unwrap());
    let mut offset = 0;
    for (name, shape) in PYTORCH_STATE_DICT {
        let size = 4 * shape.iter().product::<usize>();
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        expected += &format!(
            ",\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            shape.join(","),
            offset + size
        );
        offset += size;
    }
    expected.push('}');
    assert_eq!(json, expected);
    assert_eq!(bytes.len(), 8 + n + offset, "the file ends where the last tensor does");

    // The data: each tensor in PyTorch's layout, float32 little-endian.
    let data = &bytes[8 + n..];
    let mut offset = 0;
    for (name, tensor) in torch_params(&model) {
        let raw = le_bytes(tensor.as_slice());
        assert!(data[offset..offset + raw.len()] == raw[..], "{name}: data");
        offset += raw.len();
    }
    // OIHW for real: conv1.weight[o, i, r, s] is our HWIO [r, s, i, o].
    let conv1 = &model.conv1.weight.value;
    let at = |o: usize, i: usize, r: usize, s: usize| {
        let flat = ((o * 3 + i) * 3 + r) * 3 + s;
        f32::from_le_bytes(data[4 * flat..4 * flat + 4].try_into().unwrap())
    };
    assert_eq!(at(5, 2, 1, 0).to_bits(), conv1[[1, 0, 2, 5]].to_bits());
    assert_eq!(at(31, 0, 2, 2).to_bits(), conv1[[2, 2, 0, 31]].to_bits());

    // And the reference implementation agrees on names, shapes and types.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = file.names();
    names.sort();
    let mut want: Vec<&str> = PYTORCH_STATE_DICT.iter().map(|(n, _)| *n).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, shape) in PYTORCH_STATE_DICT {
        let view = file.tensor(name).unwrap();
        assert_eq!((view.shape(), view.dtype()), (shape, safetensors::Dtype::F32), "{name}");
    }
}

#[test]
fn a_state_dict_written_by_another_writer_loads() {
    // What `safetensors.torch.save_file(model.state_dict(), path)` writes: names sorted, only
    // the `format` metadata, no image size (inferred from fc1).
    let dir = tempdir();
    let model = CatDogCnn::new(32, 32, 11);
    let tensors = torch_params(&model);
    let path = dir.path().join("from_torch.safetensors");
    write_with_reference_writer(&path, &tensors, &[]);
    assert_same_network(&model, &load_weights(&path, None).unwrap());
    assert_same_network(&model, &load_weights(&path, Some((32, 32))).unwrap());

    // A non-square network cannot be guessed, but can be asked for.
    let wide = CatDogCnn::new(16, 24, 11);
    let path = dir.path().join("wide.safetensors");
    write_with_reference_writer(&path, &torch_params(&wide), &[]);
    assert!(matches!(error_of(load_weights(&path, None), &path), CheckpointError::Metadata { .. }));
    assert_same_network(&wide, &load_weights(&path, Some((16, 24))).unwrap());
}

/// Writes `tensors` (float32) with the `safetensors` crate's own writer, except those named in
/// `as_f64`, which are stored as float64.
fn write_with_reference_writer(path: &Path, tensors: &[(&str, Tensor)], as_f64: &[&str]) {
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            if as_f64.contains(name) {
                let bytes = t.as_slice().iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
                (name.to_string(), Dtype::F64, t.shape().to_vec(), bytes)
            } else {
                (name.to_string(), Dtype::F32, t.shape().to_vec(), le_bytes(t.as_slice()))
            }
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.as_str(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()));
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

// -------------------------------------------------------------------------------------- rejections

#[test]
fn missing_files_are_named() {
    let dir = tempdir();
    let path = dir.path().join("nowhere.safetensors");
    assert!(matches!(error_of(load_weights(&path, None), &path), CheckpointError::NotFound { .. }));
    assert!(matches!(error_of(load(&path, None), &path), CheckpointError::NotFound { .. }));

    // Weights without their state: load (to resume) names the state file.
    let (model, sgd, state) = trained(8, 8, 0.9);
    save(&path, &model, &sgd, &state).unwrap();
    std::fs::remove_file(state_path(&path)).unwrap();
    assert!(load_weights(&path, None).is_ok(), "prediction needs the weights only");
    let e = error_of(load(&path, None), &state_path(&path));
    assert!(matches!(e, CheckpointError::NotFound { .. }));
}

#[test]
fn truncated_and_damaged_files_are_rejected() {
    let (_dir, path, _) = trained_and_saved(8, 8, 0.9);
    let good = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;

    let damaged = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let e = error_of(load_weights(&path, None), &path);
        assert!(matches!(e, CheckpointError::Corrupt { .. }), "{e}");
    };
    damaged(&[]);
    damaged(&good[..5]);
    damaged(&good[..8 + n / 2]); // cut inside the header
    damaged(&good[..8 + n + 100]); // cut inside the data
    damaged(&good[..good.len() - 1]); // one byte short
    damaged(&[&good[..], &[0u8; 4]].concat()); // bytes appended
    let mut header = good.clone();
    header[8] = b'['; // not a JSON object
    damaged(&header);
    let mut data = good.clone();
    let last = data.len() - 3;
    data[last] ^= 0x10; // one bit of fc2.bias flipped: still a finite float, caught by the SHA-256
    damaged(&data);

    // A damaged state file is caught as well.
    std::fs::write(&path, &good).unwrap();
    let state_file = state_path(&path);
    let state_bytes = std::fs::read(&state_file).unwrap();
    std::fs::write(&state_file, &state_bytes[..state_bytes.len() - 8]).unwrap();
    assert!(matches!(error_of(load(&path, None), &state_file), CheckpointError::Corrupt { .. }));
}

/// Writes the network's tensors through `edit` with this crate's writer (so the SHA-256 fits)
/// and the metadata of a real checkpoint, and returns the error of loading the result.
fn load_edited(edit: impl FnOnce(&mut Vec<(&'static str, Tensor)>)) -> CheckpointError {
    let dir = tempdir();
    let path = dir.path().join("edited.safetensors");
    let model = CatDogCnn::new(8, 8, 2);
    let mut tensors = torch_params(&model);
    edit(&mut tensors);
    let meta =
        BTreeMap::from([("format", "pt".to_string()), ("image_height", "8".into()), ("image_width", "8".into())]);
    std::fs::write(&path, encode(&tensors, &meta)).unwrap();
    error_of(load_weights(&path, None), &path)
}

#[test]
fn a_missing_tensor_is_named() {
    let e = load_edited(|t| {
        t.retain(|(name, _)| *name != "conv2.bias");
    });
    assert!(matches!(&e, CheckpointError::MissingTensor { name, .. } if name == "conv2.bias"), "{e}");
}

#[test]
fn an_unexpected_tensor_is_named() {
    let e = load_edited(|t| t.push(("fc3.weight", Tensor::zeros(&[1, 1]))));
    assert!(matches!(&e, CheckpointError::UnexpectedTensor { name, .. } if name == "fc3.weight"), "{e}");
}

#[test]
fn a_wrong_shape_is_named() {
    let e = load_edited(|t| t[8].1 = t[8].1.clone().reshape(&[128, 1]));
    assert!(
        matches!(&e, CheckpointError::Shape { name, found, expected, .. }
            if name == "fc2.weight" && *found == [128, 1] && *expected == [1, 128]),
        "{e}"
    );
    // HWIO where OIHW belongs (a checkpoint that forgot the conversion) is a wrong shape too.
    let e = load_edited(|t| t[0].1 = CatDogCnn::new(8, 8, 2).conv1.weight.value);
    assert!(matches!(&e, CheckpointError::Shape { name, .. } if name == "conv1.weight"), "{e}");
}

#[test]
fn a_wrong_dtype_is_named() {
    let dir = tempdir();
    let path = dir.path().join("f64.safetensors");
    write_with_reference_writer(&path, &torch_params(&CatDogCnn::new(8, 8, 2)), &["fc1.bias"]);
    let e = error_of(load_weights(&path, None), &path);
    assert!(
        matches!(&e, CheckpointError::Dtype { name, found, .. } if name == "fc1.bias" && *found == safetensors::Dtype::F64),
        "{e}"
    );
}

#[test]
fn non_finite_values_are_refused_on_load_and_on_save() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = load_edited(|t| t[7].1.as_mut_slice()[5] = bad);
        assert!(matches!(&e, CheckpointError::NonFinite { name, index: 5, .. } if name == "fc1.bias"), "{e}");
    }

    // A diverged network does not overwrite the last good checkpoint.
    let (_dir, path, (mut model, sgd, state)) = trained_and_saved(8, 8, 0.9);
    let before = (std::fs::read(&path).unwrap(), std::fs::read(state_path(&path)).unwrap());
    model.fc2.weight.value.as_mut_slice()[3] = f32::NAN;
    let e = error_of(save(&path, &model, &sgd, &state), &path);
    assert!(matches!(&e, CheckpointError::NonFinite { name, index: 3, .. } if name == "fc2.weight"), "{e}");
    let after = (std::fs::read(&path).unwrap(), std::fs::read(state_path(&path)).unwrap());
    assert!(before == after, "a refused save changed the files");
}

/// What `save` wrote before format 2: the velocities (under the parameters' names) in the state
/// file, the weights only in the weights file, every value of the state as a metadata string,
/// and a SHA-256 of the data alone.
fn save_format_1(path: &Path, model: &CatDogCnn, sgd: &Sgd, state: &TrainState) {
    let (h, w) = model.image_size();
    let (loss_sum, correct, seen) = state.current.sums();
    let history: Vec<serde_json::Value> = state.history.iter().map(EpochMetrics::to_json).collect();
    let common = BTreeMap::from([
        ("format", "pt".to_string()),
        ("producer", "simd-cnn 0.1.0".into()),
        ("run", format!("{:016x}", state.run_id)),
        ("step", state.step.to_string()),
        ("epoch", state.epoch.to_string()),
        ("batch", state.batch.to_string()),
        ("image_height", h.to_string()),
        ("image_width", w.to_string()),
    ]);
    let mut weights_meta = common.clone();
    weights_meta.insert("content", "weights".into());
    let mut state_meta = common;
    let hyper = &state.hyper;
    state_meta.extend([
        ("content", "training-state".to_string()),
        ("seed", state.seed.to_string()),
        ("lr", sgd.lr.to_string()),
        ("momentum", sgd.momentum.to_string()),
        ("velocities", (!sgd.velocity().is_empty()).to_string()),
        ("batch_size", hyper.batch_size.to_string()),
        ("augment", hyper.augment.to_string()),
        ("val_fraction", hyper.val_fraction.to_string()),
        ("epochs", hyper.epochs.to_string()),
        ("base_lr", hyper.base_lr.to_string()),
        ("schedule", hyper.schedule.to_string()),
        ("limit", hyper.limit.map_or("none".to_string(), |n| n.to_string())),
        ("epoch_loss_sum", loss_sum.to_string()),
        ("epoch_correct", correct.to_string()),
        ("epoch_seen", seen.to_string()),
        ("epoch_seconds", state.current_seconds.to_string()),
        ("history", serde_json::Value::Array(history).to_string()),
    ]);
    let velocities: Vec<(&str, Tensor)> = CatDogCnn::PARAM_NAMES
        .iter()
        .zip(sgd.velocity())
        .map(|(&name, v)| (name, if v.shape().len() == 4 { hwio_to_oihw(v) } else { v.clone() }))
        .collect();
    std::fs::write(state_path(path), encode(&velocities, &state_meta)).unwrap();
    std::fs::write(path, encode(&torch_params(model), &weights_meta)).unwrap();
}

#[test]
fn a_format_1_checkpoint_still_loads_and_its_pair_is_checked() {
    let k = Kernels::best().unwrap();
    let dir = tempdir();
    let path = dir.path().join("catdog.safetensors");
    let state_file = state_path(&path);
    let (mut model, mut sgd, mut state) = trained(8, 8, 0.9);
    save_format_1(&path, &model, &sgd, &state);
    assert!(!metadata(&path).contains_key("simd_cnn_format"));
    let (model2, sgd2, state2) = load(&path, None).unwrap();
    assert_same_network(&model, &model2);
    assert_same_velocity(&sgd, &sgd2);
    assert_eq!(state, state2);

    // Format 1 needs both files of one save. The same run, one step apart: what a crash
    // between the two renames of that format left.
    let old_state = std::fs::read(&state_file).unwrap();
    train_step(k, &mut model, &mut sgd, &mut state, 9);
    save_format_1(&path, &model, &sgd, &state);
    std::fs::write(&state_file, &old_state).unwrap();
    let e = error_of(load(&path, None), &state_file);
    assert!(matches!(&e, CheckpointError::Mismatch { why, .. } if why.contains("`step`")), "{e}");

    // Another run at the same step.
    let (a, b) = (trained(8, 8, 0.9), trained(8, 8, 0.9));
    let other = dir.path().join("other.safetensors");
    save_format_1(&path, &a.0, &a.1, &a.2);
    save_format_1(&other, &b.0, &b.1, &b.2);
    std::fs::copy(state_path(&other), &state_file).unwrap();
    let e = error_of(load(&path, None), &state_file);
    assert!(matches!(&e, CheckpointError::Mismatch { why, .. } if why.contains("`run`")), "{e}");
}

#[test]
fn the_state_file_alone_resumes() {
    // A crash after the state file's rename and before the weights file's: the weights are one
    // save behind, or (at the first save) missing. Neither matters to a resume.
    let k = Kernels::best().unwrap();
    let (_dir, path, (mut model, mut sgd, mut state)) = trained_and_saved(8, 8, 0.9);
    let old_weights = std::fs::read(&path).unwrap();
    train_step(k, &mut model, &mut sgd, &mut state, 9);
    save(&path, &model, &sgd, &state).unwrap();
    std::fs::write(&path, &old_weights).unwrap();
    let (model2, _, state2) = load(&path, None).unwrap();
    assert_same_network(&model, &model2);
    assert_eq!(state, state2);
    std::fs::remove_file(&path).unwrap();
    let (model3, _, _) = load(&path, None).unwrap();
    assert_same_network(&model, &model3);
}

// ANCHOR: fault_injection
#[test]
fn a_save_failed_or_killed_at_any_step_leaves_a_checkpoint_that_resumes() {
    let k = Kernels::best().unwrap();
    let (old_model, old_sgd, old_state) = trained(8, 8, 0.9);
    let (mut new_model, mut new_sgd, mut new_state) = (old_model.clone(), old_sgd.clone(), old_state.clone());
    train_step(k, &mut new_model, &mut new_sgd, &mut new_state, 9);

    // Every write, fsync and rename of a save, in order.
    let dir = tempdir();
    let mut steps = Vec::new();
    save_with(dir.path().join("count.safetensors"), &new_model, &new_sgd, &new_state, &mut |s| {
        steps.push(format!("{s:?}"));
        None
    })
    .unwrap();
    let renames = steps.iter().filter(|s| s.starts_with("Rename")).count();
    assert_eq!(renames, 2, "{steps:#?}");

    let mut outcomes = BTreeMap::new();
    for (at, what) in steps.iter().enumerate() {
        for fault in [Fault::Fail, Fault::Kill] {
            let dir = tempdir();
            let path = dir.path().join("catdog.safetensors");
            save(&path, &old_model, &old_sgd, &old_state).unwrap();
            let mut count = 0;
            let mut hook = |_: Step| {
                count += 1;
                (count - 1 == at).then_some(fault)
            };
            let result = save_with(&path, &new_model, &new_sgd, &new_state, &mut hook);
            let case = format!("{fault:?} at step {at} ({what})");
            let e = result.expect_err(&case).to_string();
            assert!(!e.contains('\n') && e.contains("catdog"), "{case}: {e}");

            // What is on disk resumes: the old checkpoint or the new one, whole.
            let (model, sgd, state) = load(&path, None).unwrap_or_else(|e| panic!("{case}: {e}"));
            let resumed_new = state.step == new_state.step;
            if resumed_new {
                assert_eq!(state, new_state, "{case}");
                assert_same_network(&model, &new_model);
                assert_same_velocity(&sgd, &new_sgd);
            } else {
                assert_eq!(state, old_state, "{case}");
                assert_same_network(&model, &old_model);
                assert_same_velocity(&sgd, &old_sgd);
            }
            load_weights(&path, None).unwrap_or_else(|e| panic!("{case}: the weights file: {e}"));
            outcomes.insert(at, resumed_new);

            // The next save leaves the two files and nothing else.
            save(&path, &new_model, &new_sgd, &new_state).unwrap();
            let mut names: Vec<String> =
                std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            assert_eq!(names, ["catdog.safetensors", "catdog.state.safetensors"], "{case}");
        }
    }
    // Cut before the state file's rename: the old checkpoint; after it: the new one.
    assert!(outcomes.values().any(|&n| n) && outcomes.values().any(|&n| !n), "{outcomes:?}");
}
// ANCHOR_END: fault_injection

/// The state file at `path` with its `training_state` JSON edited and the SHA-256 made to fit.
fn edit_training_state(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let file = state_path(path);
    let bytes = std::fs::read(&file).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&meta["training_state"]).unwrap();
    edit(&mut record);
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut named: Vec<(String, Tensor)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, Tensor::from_vec(view.shape(), values))
        })
        .collect();
    named.sort_by_key(|(name, _)| header.info(name).unwrap().data_offsets.0);
    let mut meta: BTreeMap<&str, String> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    meta.insert("training_state", record.to_string());
    std::fs::write(&file, encode(&named, &meta)).unwrap();
}

#[test]
fn the_run_state_is_covered_by_the_checksum_and_checked() {
    // An edited value without a fitting SHA-256 is damage.
    let (_dir, path, _) = trained_and_saved(8, 8, 0.9);
    let file = state_path(&path);
    let bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(14).position(|w| w == br#"\"batch_size\""#.as_slice()).unwrap();
    let mut edited = bytes.clone();
    edited[at + 14..at + 16].copy_from_slice(b":9"); // batch size 4 -> 9, the same length
    std::fs::write(&file, &edited).unwrap();
    assert!(matches!(error_of(load(&path, None), &file), CheckpointError::Corrupt { .. }));

    // A fitting SHA-256 (another writer, or an edit) meets the bounds of a real run.
    let absurd: [(&str, serde_json::Value); 11] = [
        ("epoch", u64::MAX.into()),
        ("batch", (1u64 << 63).into()),
        ("batch_size", 0.into()),
        ("epochs", 0.into()),
        ("epochs", (1u64 << 40).into()),
        ("momentum", 1.5.into()),
        ("val_fraction", 1.0.into()),
        ("epoch_seen", 5.into()),
        ("epoch_correct", 1000.into()),
        ("limit", 0.into()),
        ("history", serde_json::json!([])),
    ];
    for (key, value) in absurd {
        let (_dir, path, _) = trained_and_saved(8, 8, 0.9);
        edit_training_state(&path, |r| r[key] = value.clone());
        let e = error_of(load(&path, None), &state_path(&path));
        assert!(matches!(e, CheckpointError::Metadata { .. }), "{key} = {value}: {e}");
    }
    // The edit itself is sound: an unchanged value loads.
    let (_dir, path, (_, _, state)) = trained_and_saved(8, 8, 0.9);
    edit_training_state(&path, |r| r["seed"] = 7.into());
    assert_eq!(load(&path, None).unwrap().2, state);
    let meta = metadata(&state_path(&path));
    let pairs = meta.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    assert_eq!(checksum(pairs, &[]).len(), 64);
}

#[test]
fn the_files_are_not_confused() {
    let (_dir, path, _) = trained_and_saved(8, 8, 0.9);
    let state_file = state_path(&path);
    // The velocities have the parameters' names and shapes: only the metadata tells them apart.
    let e = error_of(load_weights(&state_file, None), &state_file);
    assert!(matches!(e, CheckpointError::NotWeights { .. }), "{e}");
    assert!(matches!(error_of(load(&state_file, None), &state_file), CheckpointError::NotWeights { .. }));
}

#[test]
fn another_image_size_than_asked_for_is_refused() {
    let (_dir, path, (model, _, _)) = trained_and_saved(16, 16, 0.9);
    let e = error_of(load_weights(&path, Some((24, 24))), &path);
    assert!(matches!(e, CheckpointError::ImageSize { found: (16, 16), .. }), "{e}");
    let e = error_of(load(&path, Some((16, 24))), &state_path(&path));
    assert!(matches!(e, CheckpointError::ImageSize { found: (16, 16), .. }), "{e}");
    // The same for a PyTorch file, whose size is inferred from fc1.
    write_with_reference_writer(&path, &torch_params(&model), &[]);
    let e = error_of(load_weights(&path, Some((32, 32))), &path);
    assert!(matches!(e, CheckpointError::ImageSize { found: (16, 16), expected: (32, 32), .. }), "{e}");
}

#[test]
fn absurd_metadata_is_refused() {
    for (key, value) in [("image_height", "12"), ("image_height", "1048576"), ("image_width", "many")] {
        let dir = tempdir();
        let path = dir.path().join("catdog.safetensors");
        let model = CatDogCnn::new(8, 8, 2);
        let mut meta = BTreeMap::from([("image_height", "8".to_string()), ("image_width", "8".into())]);
        meta.insert(key, value.into());
        std::fs::write(&path, encode(&torch_params(&model), &meta)).unwrap();
        let e = error_of(load_weights(&path, None), &path);
        assert!(matches!(e, CheckpointError::Metadata { .. }), "{key}={value}: {e}");
    }
}

// ------------------------------------------------------------------------------------ Python

/// The Python to run: `SIMD_CNN_PYTHON` if set, else `python3`.
fn python() -> String {
    std::env::var("SIMD_CNN_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn python_safetensors_reads_the_weights() {
    let python = python();
    let has_modules = std::process::Command::new(&python)
        .args(["-c", "import safetensors, numpy"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_modules {
        let message = format!(
            "\n*** SKIPPED: `{python}` cannot import safetensors and numpy (pip install safetensors numpy; \
             SIMD_CNN_PYTHON names another interpreter, SIMD_CNN_REQUIRE_PYTHON=1 makes this a failure) ***\n"
        );
        assert!(std::env::var("SIMD_CNN_REQUIRE_PYTHON").as_deref() != Ok("1"), "{message}");
        eprintln!("{message}");
        return;
    }

    let dir = tempdir();
    let path = dir.path().join("catdog.safetensors");
    let model = CatDogCnn::new(128, 128, 13);
    let state = TrainState::new(13, HYPER);
    save(&path, &model, &Sgd::new(0.01, 0.9), &state).unwrap();

    // For every tensor: its type, its shape, and its first three and last values as Python
    // floats (the float32 values widened to float64, which repr prints exactly).
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
tensors = load_file(sys.argv[1])
with safe_open(sys.argv[1], "np") as f:
    meta = f.metadata()
def values(t):
    flat = t.reshape(-1)
    return [float(v) for v in flat[:3]] + [float(flat[-1])]
out = {name: {"dtype": str(t.dtype), "shape": list(t.shape), "values": values(t)} for name, t in tensors.items()}
print(json.dumps({"tensors": out, "format": meta.get("format")}))
"#;
    let out = std::process::Command::new(&python).args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "pt");
    let tensors = report["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), PYTORCH_STATE_DICT.len());
    for ((name, shape), (_, ours)) in PYTORCH_STATE_DICT.iter().zip(torch_params(&model)) {
        let t = &tensors[*name];
        assert_eq!(t["dtype"], "float32", "{name}");
        let got: Vec<u64> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(got, shape.iter().map(|&d| d as u64).collect::<Vec<_>>(), "{name}");
        let v = ours.as_slice();
        let mut want: Vec<f64> = v.iter().take(3).map(|&x| f64::from(x)).collect();
        want.push(f64::from(v[v.len() - 1]));
        let got: Vec<f64> = t["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(got, want, "{name}: values");
    }
    println!("python's safetensors read {} tensors from {}", tensors.len(), path.display());
}

// ------------------------------------------------------------------------------------ pictures

fn history(epochs: usize, validation: bool) -> Vec<EpochMetrics> {
    (1..=epochs)
        .map(|e| {
            let t = e as f64;
            EpochMetrics {
                epoch: e,
                train_loss: 0.7 / t.sqrt(),
                train_accuracy: 1.0 - 0.45 / t,
                val_loss: validation.then_some(0.72 / t.powf(0.3)),
                val_accuracy: validation.then_some(1.0 - 0.48 / t.powf(0.4)),
                seconds: 60.0,
            }
        })
        .collect()
}

/// The `points` attribute of every `<polyline>` drawn in `color` (an SVG colour, `#RRGGBB`).
fn polylines(svg: &str, color: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .map(|rest| &rest[..rest.find("/>").unwrap()])
        .filter(|tag| tag.to_uppercase().contains(color))
        .map(|tag| {
            let points = tag.split("points=\"").nth(1).unwrap();
            points[..points.find('"').unwrap()].split_whitespace().count()
        })
        .collect()
}

/// Every element opened is closed, in order: the SVG is well formed as XML (no attribute with
/// `<` or `>` in it, which the backend escapes).
fn assert_well_formed(svg: &str) {
    assert!(svg.trim_start().starts_with("<svg"), "does not start with <svg");
    let mut open: Vec<&str> = Vec::new();
    for tag in svg.split('<').skip(1) {
        let tag = &tag[..tag.find('>').expect("a tag is not closed")];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name.trim()), "</{name}> closes another element");
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            open.push(tag.split_whitespace().next().unwrap());
        }
    }
    assert!(open.is_empty(), "elements left open: {open:?}");
}

#[test]
fn training_curves_draw_every_series() {
    let dir = tempdir();
    for (epochs, validation) in [(1, true), (2, false), (40, true)] {
        let path = dir.path().join(format!("curves_{epochs}.svg"));
        training_curves(&history(epochs, validation), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_well_formed(&svg);
        for label in ["Loss", "Accuracy", "epoch", "train loss", "train accuracy"] {
            assert!(svg.contains(label), "{epochs} epochs: no `{label}`");
        }
        // Per colour: one line through every epoch per panel, and one legend sample (2 points).
        let want: Vec<usize> = vec![epochs, 2, epochs, 2];
        assert_eq!(polylines(&svg, "#0072B2"), want, "{epochs} epochs: training lines");
        let want = if validation { want } else { vec![] };
        assert_eq!(polylines(&svg, "#E69F00"), want, "{epochs} epochs: validation lines");
        assert_eq!(svg.contains("validation accuracy"), validation);
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "temporary files left behind: {names:?}");
}

#[test]
fn training_curves_need_an_epoch() {
    let dir = tempdir();
    let path = dir.path().join("empty.svg");
    let e = training_curves(&[], &path).unwrap_err();
    assert!(e.to_string().contains("no epoch"), "{e}");
    assert!(!path.exists());
}

#[test]
fn a_checkpoint_history_draws() {
    // The curves of a resumed run come from its checkpoint.
    let dir = tempdir();
    let path = dir.path().join("catdog.safetensors");
    let (model, sgd, mut state) = trained(8, 8, 0.9);
    (state.history, state.epoch) = (history(5, true), 5);
    save(&path, &model, &sgd, &state).unwrap();
    let (_, _, state) = checkpoint::load(&path, None).unwrap();
    let svg_path = dir.path().join("curves.svg");
    training_curves(&state.history, &svg_path).unwrap();
    assert_eq!(polylines(&std::fs::read_to_string(&svg_path).unwrap(), "#0072B2"), vec![5, 2, 5, 2]);
}

// ------------------------------------------------------------------- any network, from its table

// ANCHOR: four_convs_64
/// A network that is not the book's, written as a table and nothing else: four convolutions on
/// 64x64 photos. No line of the crate was written for it.
const FOUR_CONVS_64: [Layer; 16] = [
    Layer::Conv2d { name: "conv1", c_out: 8 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool1" }, // 32x32
    Layer::Conv2d { name: "conv2", c_out: 16 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool2" }, // 16x16
    Layer::Conv2d { name: "conv3", c_out: 32 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool3" }, // 8x8
    Layer::Conv2d { name: "conv4", c_out: 32 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool4" }, // 4x4x32
    Layer::Flatten,
    Layer::Linear { name: "fc1", out_features: 32 },
    Layer::ReLU,
    Layer::Linear { name: "fc2", out_features: 1 },
];
// ANCHOR_END: four_convs_64

fn assert_same_tensors(what: &str, a: &[&Tensor], b: &[&Tensor]) {
    assert_eq!(a.len(), b.len(), "{what}: number of tensors");
    for (i, (ta, tb)) in a.iter().zip(b).enumerate() {
        assert_eq!(ta.shape(), tb.shape(), "{what} {i}: shape");
        assert!(bits(ta) == bits(tb), "{what} {i}: values differ");
    }
}

#[test]
fn a_network_from_a_table_alone_makes_the_round_trip() {
    let k = Kernels::best().unwrap();
    let mut net = Network::new(&FOUR_CONVS_64, 64, 64, 3, 3);
    let mut sgd = Sgd::new(0.01, 0.9);
    let mut state = TrainState::new(3, HYPER);
    for seed in 0..2 {
        let (x, labels) = batch(64, 64, seed);
        let stats = net.forward_backward(k, &x, &labels);
        sgd.step(k, &mut net.params_mut());
        state.record_batch(stats, labels.len());
    }
    let dir = tempdir();
    let path = dir.path().join("four.safetensors");
    save_network(&path, &net, &sgd, &state).unwrap();

    // The files hold the table's parameters under PyTorch's names and shapes, and say so.
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let plan = net.plan().clone();
    assert_eq!(file.names().len(), 12, "four convolutions and two linear layers");
    for (name, shape) in plan.param_names().iter().zip(plan.torch_shapes()) {
        assert_eq!(file.tensor(name).unwrap().shape(), &shape[..], "{name}");
    }
    assert_eq!(file.tensor("conv4.weight").unwrap().shape(), &[32, 32, 3, 3]);
    assert_eq!(file.tensor("fc1.weight").unwrap().shape(), &[32, 4 * 4 * 32]);
    let description = &metadata(&path)["description"];
    assert!(description.contains("conv4 32->32") && description.contains("[n, 3, 64, 64]"), "{description}");

    // Everything comes back, bit for bit, and computes what it computed.
    let (mut back, sgd_back, state_back) = load_network(&path, &FOUR_CONVS_64, 3, Some((64, 64))).unwrap();
    assert_eq!(back.plan(), &plan);
    let values = |n: &Network| n.params().into_iter().map(|p| p.value.clone()).collect::<Vec<_>>();
    fn refs(v: &[Tensor]) -> Vec<&Tensor> {
        v.iter().collect()
    }
    assert_same_tensors("weight", &refs(&values(&net)), &refs(&values(&back)));
    assert_same_tensors("velocity", &refs(sgd.velocity()), &refs(sgd_back.velocity()));
    assert_eq!((sgd_back.lr, sgd_back.momentum), (sgd.lr, sgd.momentum));
    assert_eq!(state_back, state);
    let (x, _) = batch(64, 64, 9);
    let logits: Vec<u32> = net.forward(k, &x).iter().map(|v| v.to_bits()).collect();
    let logits_back: Vec<u32> = back.forward(k, &x).iter().map(|v| v.to_bits()).collect();
    assert_eq!(logits, logits_back);

    // The weights file alone, and the same weights as PyTorch saves them (no image size in the
    // metadata: the size is read off fc1, as for the book's network).
    let weights = load_weights_network(&path, &FOUR_CONVS_64, 3, None).unwrap();
    assert_same_tensors("weights file", &refs(&values(&net)), &refs(&values(&weights)));
    let names = plan.param_names();
    let torch: Vec<(&str, Tensor)> = names
        .iter()
        .zip(values(&net))
        .map(|(name, t)| (name.as_str(), if t.shape().len() == 4 { hwio_to_oihw(&t) } else { t }))
        .collect();
    let torch_path = dir.path().join("from_torch.safetensors");
    write_with_reference_writer(&torch_path, &torch, &[]);
    let from_torch = load_weights_network(&torch_path, &FOUR_CONVS_64, 3, None).unwrap();
    assert_eq!(from_torch.plan(), &plan);
    assert_same_tensors("PyTorch's file", &refs(&values(&net)), &refs(&values(&from_torch)));

    // The book's network is not this one: its loader refuses the file, naming a tensor.
    let e = error_of(load_weights(&path, None), &path);
    assert!(matches!(e, CheckpointError::Shape { .. } | CheckpointError::UnexpectedTensor { .. }), "{e}");
}
