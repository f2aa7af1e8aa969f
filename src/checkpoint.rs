//! Chapter 9: checkpoints of the cat/dog network.
//!
//! A checkpoint is two [safetensors] files side by side:
//!
//! | file | what it holds | who reads it |
//! | --- | --- | --- |
//! | `catdog.safetensors`, the path you give | the weights: PyTorch's `state_dict` of the network, with its names, shapes and layouts | [`load_weights`] (to predict), [`load`], and PyTorch |
//! | `catdog.state.safetensors`, see [`state_path`] | the SGD velocities under the parameters' names, and in its metadata where the run stands | [`load`] (to resume) |
//!
//! The weights file is exactly what PyTorch would save for the network of
//! `anchors/torch_cnn.py` written with named layers (`conv1` .. `fc2`, as `scripts/golden.py`
//! does): convolution weights `[c_out, c_in, 3, 3]` (we keep them `[3, 3, c_in, c_out]` in
//! memory and convert), linear weights `[out, in]`, everything float32 little-endian. So
//!
//! ```python
//! model.load_state_dict(safetensors.torch.load_file("catdog.safetensors"))   # strict
//! ```
//!
//! works unchanged, and a `state_dict` saved by PyTorch loads here with [`load_weights`].
//!
//! [`save`] writes both files atomically (each to a temporary file in the same folder, flushed to
//! disk, renamed into place), the state first and the weights last. Both carry the run's id and
//! step counter; [`load`] refuses a pair whose numbers differ, which is what a machine that died
//! between the two renames leaves behind. Every tensor's data is covered by a SHA-256 in the
//! metadata, so a damaged file is an error, not a silently different network.
//!
//! Every problem with a file is one [`CheckpointError`], one line naming the file; nothing here
//! panics on bad input.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use crate::data::download::write_atomic;
use crate::model::{CatDogCnn, StepStats};
use crate::tensor::Tensor;
use crate::tensor::layout::{hwio_to_oihw, oihw_to_hwio};
use crate::train::{EpochStats, LrSchedule, Sgd};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The `format` metadata value of PyTorch files (`safetensors.torch.save_file` writes it).
const FORMAT: &str = "pt";
/// The `content` metadata values that tell the two files apart.
const CONTENT_WEIGHTS: &str = "weights";
const CONTENT_STATE: &str = "training-state";
/// The largest image side a checkpoint may claim: a guard against absurd metadata.
const MAX_SIDE: usize = 1 << 16;

// ANCHOR: state_dict_shapes
/// The tensors of PyTorch's `state_dict` for `h` x `w` images, in the order of
/// [`CatDogCnn::PARAM_NAMES`]: convolutions `[c_out, c_in, 3, 3]`, linear layers `[out, in]`.
/// At 128 x 128, `fc1.weight` is `[128, 32768]` (128 channels of 16 x 16 after three pools).
pub fn state_dict_shapes(h: usize, w: usize) -> [(&'static str, Vec<usize>); 10] {
    let flat = 128 * (h / 8) * (w / 8);
    [
        ("conv1.weight", vec![32, 3, 3, 3]),
        ("conv1.bias", vec![32]),
        ("conv2.weight", vec![64, 32, 3, 3]),
        ("conv2.bias", vec![64]),
        ("conv3.weight", vec![128, 64, 3, 3]),
        ("conv3.bias", vec![128]),
        ("fc1.weight", vec![128, flat]),
        ("fc1.bias", vec![128]),
        ("fc2.weight", vec![1, 128]),
        ("fc2.bias", vec![1]),
    ]
}
// ANCHOR_END: state_dict_shapes

/// `catdog.safetensors` -> `catdog.state.safetensors`: the training state beside a weights file.
/// A name without the `.safetensors` extension gets `.state.safetensors` appended
/// (`run/latest` -> `run/latest.state.safetensors`).
pub fn state_path(weights: impl AsRef<Path>) -> PathBuf {
    let weights = weights.as_ref();
    let mut name = match weights.extension() {
        Some(ext) if ext == "safetensors" => weights.with_extension("").into_os_string(),
        _ => weights.as_os_str().to_os_string(),
    };
    name.push(".state.safetensors");
    PathBuf::from(name)
}

// ANCHOR: train_state
/// Where a training run stands, everything `--resume` needs to continue it exactly, beyond
/// the weights and the velocities. The other hyperparameters live where they act and are saved
/// from there: the learning rate and momentum in [`Sgd`], the image size in [`CatDogCnn`].
///
/// A trainer calls [`TrainState::record_batch`] after every step and
/// [`TrainState::finish_epoch`] after every epoch; a checkpoint saved between two batches
/// resumes at the next one.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Identifies the run: drawn when it starts, the same in all its checkpoints.
    pub run_id: u64,
    /// Optimiser steps since the start of the run, over all epochs.
    pub step: u64,
    /// The seed of every random choice of the run (initial weights, epoch order, augmentation).
    pub seed: u64,
    pub hyper: Hyperparameters,
    /// Epochs completed.
    pub epoch: usize,
    /// Batches completed in the current epoch (number `epoch`, counting from 0).
    pub batch: usize,
    /// The running loss and accuracy of the current epoch's batches so far.
    pub current: EpochStats,
    /// Seconds spent training in the current epoch so far.
    pub current_seconds: f64,
    /// One entry per completed epoch, for the curves.
    pub history: Vec<EpochMetrics>,
}

/// The choices of a run that neither the model nor the optimiser holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyperparameters {
    /// Images per step.
    pub batch_size: usize,
    /// Random crops and horizontal flips of the training images.
    pub augment: bool,
    /// The fraction of the training images held out for validation, in [0, 1).
    pub val_fraction: f64,
    /// Epochs the run was asked for.
    pub epochs: usize,
    /// The learning rate the schedule starts from (the optimiser holds the current one).
    pub base_lr: f32,
    pub schedule: LrSchedule,
    /// Only this many images of the data set (a seeded choice), if set.
    pub limit: Option<usize>,
}

/// What one epoch measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1 for the first epoch.
    pub epoch: usize,
    /// Mean loss over the epoch's training batches (weights changing under it).
    pub train_loss: f64,
    /// Fraction of training images classified right during the epoch.
    pub train_accuracy: f64,
    /// Mean loss on the validation images after the epoch, if there are any.
    pub val_loss: Option<f64>,
    /// Fraction of validation images classified right after the epoch, if there are any.
    pub val_accuracy: Option<f64>,
    /// Seconds of training (without the validation).
    pub seconds: f64,
}
// ANCHOR_END: train_state

impl EpochMetrics {
    /// The figures as a JSON object (`null` for a missing validation figure): the form of the
    /// history in a checkpoint and of the trainer's per-epoch lines.
    pub fn to_json(&self) -> Value {
        json!({
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "seconds": self.seconds,
        })
    }
}

impl TrainState {
    /// The state of a run about to start: a fresh run id, nothing done yet.
    pub fn new(seed: u64, hyper: Hyperparameters) -> Self {
        TrainState {
            run_id: new_run_id(),
            step: 0,
            seed,
            hyper,
            epoch: 0,
            batch: 0,
            current: EpochStats::default(),
            current_seconds: 0.0,
            history: Vec::new(),
        }
    }

    /// Counts one optimiser step on a batch of `batch_len` images.
    pub fn record_batch(&mut self, stats: StepStats, batch_len: usize) {
        self.step += 1;
        self.batch += 1;
        self.current.add(stats, batch_len);
    }

    /// Closes the current epoch: its training figures and the given validation figures go into
    /// [`TrainState::history`], and the next epoch starts at batch 0. `seconds` is the epoch's
    /// whole training time, [`TrainState::current_seconds`] included when the epoch was resumed.
    pub fn finish_epoch(&mut self, val_loss: Option<f64>, val_accuracy: Option<f64>, seconds: f64) -> EpochMetrics {
        let metrics = EpochMetrics {
            epoch: self.epoch + 1,
            train_loss: self.current.mean_loss(),
            train_accuracy: self.current.accuracy(),
            val_loss,
            val_accuracy,
            seconds,
        };
        self.history.push(metrics);
        self.epoch += 1;
        self.batch = 0;
        self.current = EpochStats::default();
        self.current_seconds = 0.0;
        metrics
    }
}

/// A run id that differs from one run to the next: std's per-process random hash keys, mixed
/// with the clock.
fn new_run_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    hasher.write_u128(now);
    hasher.finish()
}

/// Everything that can be wrong with a checkpoint, one line each.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot {action}: {source}", path.display())]
    Io { path: PathBuf, action: &'static str, source: std::io::Error },
    #[error("{}: not a valid safetensors file: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("{}: tensor `{name}` is missing", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: unexpected tensor `{name}` (the cat/dog network has no such parameter)", path.display())]
    UnexpectedTensor { path: PathBuf, name: String },
    #[error("{}: `{name}` has shape {found:?}, expected {expected:?}", path.display())]
    Shape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("{}: `{name}` is {found}, expected F32 (convert it with `.float()` before saving)", path.display())]
    Dtype { path: PathBuf, name: String, found: Dtype },
    #[error("{}: `{name}` holds {value} at flat index {index}, not a finite number", path.display())]
    NonFinite { path: PathBuf, name: String, index: usize, value: f32 },
    #[error("{}: metadata: {why}", path.display())]
    Metadata { path: PathBuf, why: String },
    #[error("{}: a training-state file, not weights (give the weights file beside it)", path.display())]
    NotWeights { path: PathBuf },
    #[error("{} does not belong to {}: {why}", state.display(), weights.display())]
    Mismatch { state: PathBuf, weights: PathBuf, why: String },
    #[error("{}: cannot save: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("{}: a checkpoint for {}x{} images, but {}x{} was asked for", path.display(), found.0, found.1, expected.0, expected.1)]
    ImageSize { path: PathBuf, found: (usize, usize), expected: (usize, usize) },
}

// ------------------------------------------------------------------------------------ writing

// ANCHOR: save
/// Saves `model` to `path` and the optimiser and run state to [`state_path`]`(path)`, each file
/// atomically, the state first. Refuses, before writing anything, a network or velocity that
/// is not finite: a diverged run never overwrites the last good checkpoint.
pub fn save(path: impl AsRef<Path>, model: &CatDogCnn, sgd: &Sgd, state: &TrainState) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let state_file = state_path(path);
    let weights = torch_tensors(model.params().map(|p| &p.value));
    check_finite(path, &weights)?;
    let velocities = sgd.velocity();
    let fits = velocities.is_empty()
        || velocities.len() == weights.len()
            && velocities.iter().zip(model.params()).all(|(v, p)| v.shape() == p.value.shape());
    if !fits {
        let why = format!(
            "the optimiser's {} velocities do not fit the network's {} parameters",
            velocities.len(),
            weights.len()
        );
        return Err(CheckpointError::Invalid { path: state_file, why });
    }
    let velocities = torch_tensors(velocities);
    check_finite(&state_file, &velocities)?;

    let (h, w) = model.image_size();
    let common = [
        ("format", FORMAT.to_string()),
        ("producer", format!("simd-cnn {}", env!("CARGO_PKG_VERSION"))),
        ("run", format!("{:016x}", state.run_id)),
        ("step", state.step.to_string()),
        ("epoch", state.epoch.to_string()),
        ("batch", state.batch.to_string()),
        ("image_height", h.to_string()),
        ("image_width", w.to_string()),
    ];
    let mut weights_meta: BTreeMap<&str, String> = common.clone().into();
    weights_meta.insert("content", CONTENT_WEIGHTS.into());
    weights_meta.insert("description", describe_weights(h, w));
    let mut state_meta: BTreeMap<&str, String> = common.into();
    state_meta.extend(state_metadata(sgd, state));

    write(&state_file, &encode(&velocities, &state_meta))?;
    write(path, &encode(&weights, &weights_meta))
}
// ANCHOR_END: save

/// The metadata a reader of the weights needs to use them without this crate.
fn describe_weights(h: usize, w: usize) -> String {
    format!(
        "Cat/dog CNN: conv1 3->32, conv2 32->64, conv3 64->128 (3x3, padding 1, each followed by ReLU and \
         2x2 max-pool), flatten (C, H, W), fc1 {}->128, ReLU, fc2 128->1. Input: RGB float32 in [0, 1], \
         NCHW [n, 3, {h}, {w}]. Output: the logit of 'dog' (label 1; cat is 0); sigmoid gives the probability.",
        128 * (h / 8) * (w / 8)
    )
}

/// The training state as metadata strings. Floats are written in Rust's shortest form that
/// parses back to the same bits.
fn state_metadata(sgd: &Sgd, state: &TrainState) -> BTreeMap<&'static str, String> {
    let (loss_sum, correct, seen) = state.current.sums();
    let history: Vec<Value> = state.history.iter().map(EpochMetrics::to_json).collect();
    BTreeMap::from([
        ("content", CONTENT_STATE.to_string()),
        (
            "description",
            "SGD momentum buffers of the weights file beside it, under the parameters' names and in their \
             layout, and where the training run stands (simd-cnn, chapter 9)"
                .to_string(),
        ),
        ("seed", state.seed.to_string()),
        ("lr", sgd.lr.to_string()),
        ("momentum", sgd.momentum.to_string()),
        ("velocities", (!sgd.velocity().is_empty()).to_string()),
        ("batch_size", state.hyper.batch_size.to_string()),
        ("augment", state.hyper.augment.to_string()),
        ("val_fraction", state.hyper.val_fraction.to_string()),
        ("epochs", state.hyper.epochs.to_string()),
        ("base_lr", state.hyper.base_lr.to_string()),
        ("schedule", state.hyper.schedule.to_string()),
        ("limit", state.hyper.limit.map_or("none".to_string(), |n| n.to_string())),
        ("epoch_loss_sum", loss_sum.to_string()),
        ("epoch_correct", correct.to_string()),
        ("epoch_seen", seen.to_string()),
        ("epoch_seconds", state.current_seconds.to_string()),
        ("history", Value::Array(history).to_string()),
    ])
}

/// Our tensors under PyTorch's names and in its layout (convolution weights OIHW).
fn torch_tensors<'a>(ours: impl IntoIterator<Item = &'a Tensor>) -> Vec<(&'static str, Tensor)> {
    CatDogCnn::PARAM_NAMES
        .iter()
        .zip(ours)
        .map(|(&name, t)| (name, if t.shape().len() == 4 { hwio_to_oihw(t) } else { t.clone() }))
        .collect()
}

fn check_finite(path: &Path, tensors: &[(&str, Tensor)]) -> Result<(), CheckpointError> {
    for (name, t) in tensors {
        if let Some((index, &value)) = t.as_slice().iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CheckpointError::NonFinite { path: path.into(), name: name.to_string(), index, value });
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_atomic(path, bytes).map_err(|source| CheckpointError::Io { path: path.into(), action: "write", source })
}

// ANCHOR: encode
/// The bytes of a safetensors file holding `tensors` (float32), in the order given:
///
/// ```text
/// [n: u64 little-endian][header: n bytes of JSON, padded with spaces to a multiple of 8][data]
/// header = {"__metadata__":{"key":"value",..},"name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]},..}
/// ```
///
/// The data is every tensor's values, little-endian, one after the other, and `data_offsets`
/// count from its start. The metadata keys come sorted, with `sha256` (of the data) added, so
/// the same tensors and metadata always give the same bytes.
pub fn encode(tensors: &[(&str, Tensor)], metadata: &BTreeMap<&str, String>) -> Vec<u8> {
    let mut data = Vec::new();
    let mut entries = String::new();
    for (name, tensor) in tensors {
        let begin = data.len();
        for value in tensor.as_slice() {
            data.extend_from_slice(&value.to_le_bytes());
        }
        let (name, shape, end) = (Value::from(*name), json!(tensor.shape()), data.len());
        entries += &format!(r#",{name}:{{"dtype":"F32","shape":{shape},"data_offsets":[{begin},{end}]}}"#);
    }
    let mut metadata: BTreeMap<&str, String> = metadata.clone();
    metadata.insert("sha256", hex(&Sha256::digest(&data)));
    let mut header = format!("{{\"__metadata__\":{}{entries}}}", json!(metadata));
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + data.len());
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    bytes
}
// ANCHOR_END: encode

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------------------------ reading

// ANCHOR: load_weights
/// The network saved in the weights file `path`, ready to predict. The image size comes from
/// the metadata or, for a file PyTorch wrote without ours, from `fc1.weight`'s shape
/// (`[128, 128 * h/8 * w/8]`, taken as square). With `image_size`, a checkpoint for another size
/// is an error (and a PyTorch file of a non-square network can be read).
pub fn load_weights(path: impl AsRef<Path>, image_size: Option<(usize, usize)>) -> Result<CatDogCnn, CheckpointError> {
    read_weights(&File::read_weights(path.as_ref())?, image_size)
}
// ANCHOR_END: load_weights

// ANCHOR: load
/// The network, the optimiser and the run state saved by [`save`] at `path`, to resume
/// training. `image_size` as in [`load_weights`].
pub fn load(
    path: impl AsRef<Path>,
    image_size: Option<(usize, usize)>,
) -> Result<(CatDogCnn, Sgd, TrainState), CheckpointError> {
    let weights = File::read_weights(path.as_ref())?;
    let model = read_weights(&weights, image_size)?;
    let state = File::read(&state_path(path.as_ref()))?;
    if state.content() != Some(CONTENT_STATE) {
        return Err(state.metadata_error("`content` is not `training-state`: not a training-state file".into()));
    }
    check_pair(&weights, &state)?;
    let (sgd, train_state) = read_state(&state)?;
    Ok((model, sgd, train_state))
}
// ANCHOR_END: load

/// Both files of a pair carry the same run id, step and image size.
fn check_pair(weights: &File, state: &File) -> Result<(), CheckpointError> {
    for key in ["run", "step", "image_height", "image_width"] {
        let found = state.meta(key)?;
        let Some(expected) = weights.meta.get(key) else {
            return Err(mismatch(
                weights,
                state,
                format!("the weights have no `{key}` (not saved with a training state)"),
            ));
        };
        if found != expected {
            return Err(mismatch(weights, state, format!("its `{key}` is {found}, the weights' is {expected}")));
        }
    }
    Ok(())
}

fn mismatch(weights: &File, state: &File, why: String) -> CheckpointError {
    CheckpointError::Mismatch { state: state.path.clone(), weights: weights.path.clone(), why }
}

fn read_weights(file: &File, image_size: Option<(usize, usize)>) -> Result<CatDogCnn, CheckpointError> {
    let (h, w) = file.image_size(image_size)?;
    let tensors = file.tensors(&state_dict_shapes(h, w))?;
    let mut model = CatDogCnn::new(h, w, 0);
    for (param, tensor) in model.params_mut().into_iter().zip(tensors) {
        param.value = tensor;
    }
    Ok(model)
}

fn read_state(file: &File) -> Result<(Sgd, TrainState), CheckpointError> {
    let (h, w) = file.image_size(None)?;
    let mut sgd = Sgd::new(file.parse("lr")?, file.parse("momentum")?);
    if !(sgd.lr.is_finite() && sgd.lr > 0.0 && (0.0..1.0).contains(&sgd.momentum)) {
        return Err(file.metadata_error(format!("lr {} and momentum {} are out of range", sgd.lr, sgd.momentum)));
    }
    if file.parse::<bool>("velocities")? {
        sgd.set_velocity(file.tensors(&state_dict_shapes(h, w))?);
    } else if let Some(name) = file.header.tensors().into_keys().next() {
        return Err(CheckpointError::UnexpectedTensor { path: file.path.clone(), name });
    }
    let limit = match file.meta("limit")? {
        "none" => None,
        _ => Some(file.parse("limit")?),
    };
    let schedule = file.meta("schedule")?.parse().map_err(|e: String| file.metadata_error(e))?;
    let hyper = Hyperparameters {
        batch_size: file.parse("batch_size")?,
        augment: file.parse("augment")?,
        val_fraction: file.parse("val_fraction")?,
        epochs: file.parse("epochs")?,
        base_lr: file.parse("base_lr")?,
        schedule,
        limit,
    };
    if hyper.batch_size == 0 || !(0.0..1.0).contains(&hyper.val_fraction) {
        return Err(file.metadata_error(format!(
            "batch size {} or validation fraction {} out of range",
            hyper.batch_size, hyper.val_fraction
        )));
    }
    let run = file.meta("run")?;
    let state = TrainState {
        run_id: u64::from_str_radix(run, 16)
            .map_err(|_| file.metadata_error(format!("`run` {run:?} is not hexadecimal")))?,
        step: file.parse("step")?,
        seed: file.parse("seed")?,
        hyper,
        epoch: file.parse("epoch")?,
        batch: file.parse("batch")?,
        current: EpochStats::from_sums(
            file.parse("epoch_loss_sum")?,
            file.parse("epoch_correct")?,
            file.parse("epoch_seen")?,
        ),
        current_seconds: file.parse("epoch_seconds")?,
        history: parse_history(file)?,
    };
    Ok((sgd, state))
}

/// The `history` metadata: a JSON array with one object per epoch (`null` for a missing value).
fn parse_history(file: &File) -> Result<Vec<EpochMetrics>, CheckpointError> {
    let text = file.meta("history")?;
    let bad = |why: String| file.metadata_error(format!("`history`: {why}"));
    let rows: Vec<Value> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let number = |key: &str| match &row[key] {
                Value::Null => Ok(None),
                v => v.as_f64().map(Some).ok_or_else(|| bad(format!("entry {i}: `{key}` is not a number"))),
            };
            // NaN is written as null: a required value that is null reads back as NaN.
            let required = |key: &str| Ok::<_, CheckpointError>(number(key)?.unwrap_or(f64::NAN));
            let epoch = row["epoch"].as_u64().and_then(|e| usize::try_from(e).ok());
            Ok(EpochMetrics {
                epoch: epoch.ok_or_else(|| bad(format!("entry {i}: `epoch` is not a count")))?,
                train_loss: required("train_loss")?,
                train_accuracy: required("train_accuracy")?,
                val_loss: number("val_loss")?,
                val_accuracy: number("val_accuracy")?,
                seconds: required("seconds")?,
            })
        })
        .collect()
}

// ANCHOR: file
/// A safetensors file read whole, its header parsed and checked by the `safetensors` crate
/// (offsets inside the file, no gaps, sizes that match the shapes) and its data checked against
/// the SHA-256 in its metadata, when it has one.
struct File {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Where the data starts: 8 + the header's length.
    data_start: usize,
    header: Metadata,
    meta: std::collections::HashMap<String, String>,
}
// ANCHOR_END: file

impl File {
    fn read(path: &Path) -> Result<File, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CheckpointError::NotFound { path: path.into() },
            _ => CheckpointError::Io { path: path.into(), action: "read", source },
        })?;
        let corrupt = |why: String| CheckpointError::Corrupt { path: path.into(), why };
        let (header_len, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(describe(&e)))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let data_start = 8 + header_len;
        if let Some(expected) = meta.get("sha256")
            && *expected != hex(&Sha256::digest(&bytes[data_start..]))
        {
            return Err(corrupt("the tensor data does not match the SHA-256 in its metadata (damaged)".into()));
        }
        Ok(File { path: path.into(), bytes, data_start, header, meta })
    }

    /// Reads a weights file, refusing the training-state file given in its place (it holds
    /// tensors of the same names and shapes).
    fn read_weights(path: &Path) -> Result<File, CheckpointError> {
        let file = File::read(path)?;
        if file.content() == Some(CONTENT_STATE) {
            return Err(CheckpointError::NotWeights { path: file.path });
        }
        Ok(file)
    }

    fn content(&self) -> Option<&str> {
        self.meta.get("content").map(String::as_str)
    }

    fn metadata_error(&self, why: String) -> CheckpointError {
        CheckpointError::Metadata { path: self.path.clone(), why }
    }

    fn meta(&self, key: &str) -> Result<&str, CheckpointError> {
        self.meta.get(key).map(String::as_str).ok_or_else(|| self.metadata_error(format!("`{key}` is missing")))
    }

    fn parse<T: FromStr>(&self, key: &str) -> Result<T, CheckpointError> {
        let text = self.meta(key)?;
        text.parse().map_err(|_| self.metadata_error(format!("`{key}` = {text:?} is not a valid value")))
    }

    // ANCHOR: image_size
    /// The image size the file was saved for, checked against `expected` when given.
    fn image_size(&self, expected: Option<(usize, usize)>) -> Result<(usize, usize), CheckpointError> {
        let found = if self.meta.contains_key("image_height") || self.meta.contains_key("image_width") {
            (self.parse("image_height")?, self.parse("image_width")?)
        } else {
            // A file without our metadata: fc1.weight is [128, 128 * (h/8) * (w/8)].
            let fc1 = self.info("fc1.weight", &[128, 0])?;
            let in_features = fc1.shape[1];
            match expected {
                Some((h, w)) if (h / 8).checked_mul(w / 8).and_then(|c| c.checked_mul(128)) == Some(in_features) => {
                    (h, w)
                }
                _ => square_side(in_features).map(|side| (side, side)).ok_or_else(|| {
                    self.metadata_error(format!(
                        "no image size, and fc1.weight [128, {in_features}] is not the layer of a square image"
                    ))
                })?,
            }
        };
        let valid = |side: usize| side > 0 && side <= MAX_SIDE && side.is_multiple_of(8);
        if !valid(found.0) || !valid(found.1) {
            return Err(self.metadata_error(format!(
                "image size {}x{}: sides must be multiples of 8 up to {MAX_SIDE}",
                found.0, found.1
            )));
        }
        match expected {
            Some(expected) if expected != found => {
                Err(CheckpointError::ImageSize { path: self.path.clone(), found, expected })
            }
            _ => Ok(found),
        }
    }
    // ANCHOR_END: image_size

    /// The header entry of tensor `name`; `like` gives the expected rank (and only the rank) for
    /// the error message.
    fn info(&self, name: &str, like: &[usize]) -> Result<&safetensors::tensor::TensorInfo, CheckpointError> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| CheckpointError::MissingTensor { path: self.path.clone(), name: name.into() })?;
        if info.shape.len() != like.len() {
            return Err(CheckpointError::Shape {
                path: self.path.clone(),
                name: name.into(),
                found: info.shape.clone(),
                expected: like.to_vec(),
            });
        }
        Ok(info)
    }

    // ANCHOR: read_tensors
    /// Exactly the tensors `expected` (PyTorch's names and shapes), float32 and finite,
    /// converted to our layout (convolution weights HWIO). Any other tensor is an error, as in
    /// PyTorch's strict `load_state_dict`.
    fn tensors(&self, expected: &[(&'static str, Vec<usize>)]) -> Result<Vec<Tensor>, CheckpointError> {
        if let Some(name) = self.header.tensors().into_keys().find(|n| !expected.iter().any(|(e, _)| e == n)) {
            return Err(CheckpointError::UnexpectedTensor { path: self.path.clone(), name });
        }
        let mut tensors = Vec::with_capacity(expected.len());
        for (name, shape) in expected {
            let info = self.info(name, shape)?;
            let error = |found| CheckpointError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                found,
                expected: shape.clone(),
            };
            if info.shape != *shape {
                return Err(error(info.shape.clone()));
            }
            if info.dtype != Dtype::F32 {
                return Err(CheckpointError::Dtype {
                    path: self.path.clone(),
                    name: name.to_string(),
                    found: info.dtype,
                });
            }
            let (begin, end) = info.data_offsets;
            let bytes = &self.bytes[self.data_start + begin..self.data_start + end];
            let values: Vec<f32> =
                bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(CheckpointError::NonFinite {
                    path: self.path.clone(),
                    name: name.to_string(),
                    index,
                    value,
                });
            }
            let tensor = Tensor::from_vec(shape, values);
            tensors.push(if shape.len() == 4 { oihw_to_hwio(&tensor) } else { tensor });
        }
        Ok(tensors)
    }
    // ANCHOR_END: read_tensors
}

/// The side `s` of a square image whose `fc1` takes `in_features = 128 * (s/8)^2` inputs.
fn square_side(in_features: usize) -> Option<usize> {
    if in_features == 0 || !in_features.is_multiple_of(128) {
        return None;
    }
    let cells = in_features / 128;
    let root = cells.isqrt();
    (root * root == cells).then_some(8 * root)
}

/// A safetensors error in words a reader of the message can act on.
fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => "shorter than the 8-byte header length (empty or truncated)".into(),
        SafeTensorError::InvalidHeaderLength => "the header runs past the end of the file (truncated?)".into(),
        SafeTensorError::MetadataIncompleteBuffer => {
            "the data is not the size the header promises (truncated, or bytes appended)".into()
        }
        other => other.to_string(),
    }
}
