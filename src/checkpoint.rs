//! Chapter 9: checkpoints of the cat/dog network, and of any network written as a layer table
//! ([`save_network`], [`load_network`]): every name, shape and description in the files comes
//! from the network's table.
//!
//! A checkpoint is two [safetensors] files side by side:
//!
//! | file | what it holds | who reads it |
//! | --- | --- | --- |
//! | `catdog.state.safetensors`, see [`state_path`] | everything a resumed run needs: the weights, the SGD velocities and, in its metadata, where the run stands | [`load`] (to resume) |
//! | `catdog.safetensors`, the path you give | the weights alone: PyTorch's `state_dict` of the network, with its names, shapes and layouts | [`load_weights`] (to predict), and PyTorch |
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
//! **The commit point.** Two files cannot be renamed into place at one instant, so they must not
//! need to be: the state file holds the weights too and is the whole checkpoint; the weights file
//! is an export of it. [`save`] writes the state file atomically ([`crate::files::write_atomic`]:
//! a temporary file, `fsync`, one rename), and only then the weights file. A crash before the
//! state file's rename leaves the previous checkpoint whole; a crash after it leaves the new one
//! whole, with a weights file one save behind until the next save rewrites it. [`load`] reads
//! the state file alone. So at every instant of a save, what is on disk resumes.
//!
//! Every tensor's data and every metadata value is covered by a SHA-256 in the metadata, so a
//! damaged file is an error, not a silently different network or a run that resumes at epoch
//! 2^64 - 1; the values are then checked against the bounds of a real run. Files written before
//! format 2 (a state file of velocities beside the weights) still load.
//!
//! Every problem with a file is one [`CheckpointError`], one line naming the file; nothing here
//! panics on bad input.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use crate::files::{self, Fault, Step, sha256_hex};
use crate::kernels::{ConvAlgorithm, ConvAlgorithmError, Precision, PrecisionError};
use crate::model::{CATDOG, CATDOG_CHANNELS, CatDogCnn, Layer, Network, Plan, StepOp};
use crate::nn::Param;
use crate::tensor::Tensor;
use crate::tensor::layout::{hwio_to_oihw, oihw_to_hwio};
use crate::train::{EpochStats, Sgd, UnknownSchedule};
use crate::trainer::{EpochMetrics, Hyperparameters, TrainState};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The `format` metadata value of PyTorch files (`safetensors.torch.save_file` writes it).
const FORMAT: &str = "pt";
/// The `content` metadata values that tell the two files apart.
const CONTENT_WEIGHTS: &str = "weights";
const CONTENT_STATE: &str = "training-state";
/// The `simd_cnn_format` metadata value of the files [`save`] writes. Format 2 keeps the weights
/// in the state file and covers the metadata by the SHA-256; format 1 (no such key) kept only
/// the velocities there.
const FORMAT_VERSION: &str = "2";
/// The largest image side a checkpoint may claim: a guard against absurd metadata.
const MAX_SIDE: usize = 1 << 16;
/// The largest batch and epoch count a checkpoint may claim, far beyond any real run.
const MAX_COUNT: usize = 1 << 24;
/// The prefix of the velocities' names in the state file: PyTorch's SGD calls them momentum buffers.
const VELOCITY_PREFIX: &str = "momentum_buffer.";

// ANCHOR: state_dict_shapes
/// The tensors of PyTorch's `state_dict` for `h` x `w` images, in the order of
/// [`CatDogCnn::PARAM_NAMES`]: convolutions `[c_out, c_in, 3, 3]`, linear layers `[out, in]`.
/// At 128 x 128, `fc1.weight` is `[128, 32768]` (128 channels of 16 x 16 after three pools).
/// Both come from the network's table, [`CATDOG`].
pub fn state_dict_shapes(h: usize, w: usize) -> [(&'static str, Vec<usize>); 10] {
    let shapes = Plan::new(&CATDOG, h, w, CATDOG_CHANNELS).torch_shapes();
    std::array::from_fn(|i| (CatDogCnn::PARAM_NAMES[i], shapes[i].clone()))
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
    #[error("{}: unexpected tensor `{name}` (the network has no such parameter)", path.display())]
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
/// Saves the run: the whole checkpoint (weights, velocities, position) to
/// [`state_path`]`(path)`, then the weights alone to `path`, each file atomically. The state
/// file's rename is the commit point (see the module's summary). Refuses, before writing
/// anything, a network or velocity that is not finite: a diverged run never overwrites the last
/// good checkpoint.
pub fn save(path: impl AsRef<Path>, model: &CatDogCnn, sgd: &Sgd, state: &TrainState) -> Result<(), CheckpointError> {
    save_with(path, model, sgd, state, &mut |_| None)
}

/// [`save`] for any network built from a table: the names, shapes and description in the files
/// all come from its table.
pub fn save_network(
    path: impl AsRef<Path>,
    net: &Network,
    sgd: &Sgd,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    save_params(path.as_ref(), net.plan(), &net.params(), sgd, state, &mut |_| None)
}

/// [`save`], calling `hook` before every write, `fsync` and rename (see
/// [`files::write_atomic_with`]): the tests fail or kill the save at each of them in turn.
pub fn save_with(
    path: impl AsRef<Path>,
    model: &CatDogCnn,
    sgd: &Sgd,
    state: &TrainState,
    hook: &mut dyn FnMut(Step) -> Option<Fault>,
) -> Result<(), CheckpointError> {
    save_params(path.as_ref(), model.plan(), &model.params(), sgd, state, hook)
}

/// [`save_with`] for the parameters `params` of the network `plan` runs, in table order.
fn save_params(
    path: &Path,
    plan: &Plan,
    params: &[&Param],
    sgd: &Sgd,
    state: &TrainState,
    hook: &mut dyn FnMut(Step) -> Option<Fault>,
) -> Result<(), CheckpointError> {
    let names = plan.param_names();
    let state_file = state_path(path);
    let weights = torch_tensors(&names, params.iter().map(|p| &p.value), "");
    check_finite(path, &weights)?;
    let velocities = sgd.velocity();
    let fits = velocities.is_empty()
        || velocities.len() == weights.len()
            && velocities.iter().zip(params).all(|(v, p)| v.shape() == p.value.shape());
    if !fits {
        let why = format!(
            "the optimiser's {} velocities do not fit the network's {} parameters",
            velocities.len(),
            weights.len()
        );
        return Err(CheckpointError::Invalid { path: state_file, why });
    }
    let velocities = torch_tensors(&names, velocities, VELOCITY_PREFIX);
    check_finite(&state_file, &velocities)?;

    let (h, w, _) = plan.input();
    let common = [
        ("format", FORMAT.to_string()),
        ("simd_cnn_format", FORMAT_VERSION.to_string()),
        ("producer", format!("simd-cnn {}", env!("CARGO_PKG_VERSION"))),
        ("run", format!("{:016x}", state.run_id)),
        ("step", state.step.to_string()),
        ("image_height", h.to_string()),
        ("image_width", w.to_string()),
    ];
    let mut weights_meta: BTreeMap<&str, String> = common.clone().into();
    weights_meta.insert("content", CONTENT_WEIGHTS.into());
    weights_meta.insert("description", describe_weights(plan));
    let mut state_meta: BTreeMap<&str, String> = common.into();
    state_meta.insert("content", CONTENT_STATE.into());
    state_meta.insert(
        "description",
        "A simd-cnn training checkpoint (chapter 9): the weights under PyTorch's names, the SGD momentum \
         buffers as momentum_buffer.<name>, and in `training_state` where the run stands"
            .into(),
    );
    state_meta.insert("training_state", RunRecord::new(sgd, state).to_json());

    let everything: Vec<(String, Tensor)> = weights.iter().cloned().chain(velocities).collect();
    write(&state_file, &encode(&everything, &state_meta), hook)?;
    write(path, &encode(&weights, &weights_meta), hook)
}
// ANCHOR_END: save

/// The metadata a reader of the weights needs to use them without this crate, written from
/// the network's table.
fn describe_weights(plan: &Plan) -> String {
    let (h, w, c) = plan.input();
    if *plan == Plan::new(&CATDOG, h, w, CATDOG_CHANNELS) {
        return format!(
            "Cat/dog CNN: {}. Input: RGB float32 in [0, 1], NCHW [n, {c}, {h}, {w}]. Output: the logit \
             of 'dog' (label 1; cat is 0); sigmoid gives the probability.",
            plan.describe()
        );
    }
    format!("A CNN: {}. Input: float32, NCHW [n, {c}, {h}, {w}]. Output: one logit per image.", plan.describe())
}

// ANCHOR: run_record
/// Where the run stands, as the state file's `training_state` metadata: one JSON object,
/// written and read by serde. Floats are written in the shortest form that reads back to the
/// same bits.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRecord {
    seed: u64,
    /// The optimiser: the current learning rate, momentum, whether it holds velocities.
    lr: f32,
    momentum: f32,
    velocities: bool,
    batch_size: usize,
    augment: bool,
    val_fraction: f64,
    epochs: usize,
    base_lr: f32,
    schedule: String,
    limit: Option<usize>,
    /// `direct` or `winograd`; absent (direct) in the records of earlier versions.
    #[serde(default)]
    conv: String,
    /// `fp32` or `bf16`; absent (fp32) in the records of earlier versions.
    #[serde(default)]
    precision: String,
    /// The position: epochs done, batches done in the next one.
    epoch: usize,
    batch: usize,
    /// The running sums of the current epoch (see [`EpochStats::sums`]).
    epoch_loss_sum: f64,
    epoch_correct: usize,
    epoch_seen: usize,
    epoch_seconds: f64,
    history: Vec<EpochMetrics>,
}
// ANCHOR_END: run_record

impl RunRecord {
    fn new(sgd: &Sgd, state: &TrainState) -> RunRecord {
        let (epoch_loss_sum, epoch_correct, epoch_seen) = state.current.sums();
        let h = &state.hyper;
        RunRecord {
            seed: state.seed,
            lr: sgd.lr,
            momentum: sgd.momentum,
            velocities: !sgd.velocity().is_empty(),
            batch_size: h.batch_size,
            augment: h.augment,
            val_fraction: h.val_fraction,
            epochs: h.epochs,
            base_lr: h.base_lr,
            schedule: h.schedule.to_string(),
            limit: h.limit,
            conv: h.conv.to_string(),
            precision: h.precision.to_string(),
            epoch: state.epoch,
            batch: state.batch,
            epoch_loss_sum,
            epoch_correct,
            epoch_seen,
            epoch_seconds: state.current_seconds,
            history: state.history.clone(),
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Our tensors under PyTorch's `names` (after `prefix`) and in its layout (convolution weights
/// OIHW).
fn torch_tensors<'a>(
    names: &[String],
    ours: impl IntoIterator<Item = &'a Tensor>,
    prefix: &str,
) -> Vec<(String, Tensor)> {
    names
        .iter()
        .zip(ours)
        .map(|(name, t)| (format!("{prefix}{name}"), if t.shape().len() == 4 { hwio_to_oihw(t) } else { t.clone() }))
        .collect()
}

fn check_finite(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    for (name, t) in tensors {
        if let Some((index, &value)) = t.as_slice().iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CheckpointError::NonFinite { path: path.into(), name: name.to_string(), index, value });
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8], hook: &mut dyn FnMut(Step) -> Option<Fault>) -> Result<(), CheckpointError> {
    files::write_atomic_with(path, bytes, hook).map_err(|source| CheckpointError::Io {
        path: path.into(),
        action: "write",
        source,
    })
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
/// count from its start. The metadata keys come sorted, with `sha256` added (see [`checksum`]),
/// so the same tensors and metadata always give the same bytes.
pub fn encode<N: AsRef<str>>(tensors: &[(N, Tensor)], metadata: &BTreeMap<&str, String>) -> Vec<u8> {
    let mut data = Vec::new();
    let mut entries = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let begin = data.len();
        for value in tensor.as_slice() {
            data.extend_from_slice(&value.to_le_bytes());
        }
        entries.push((name.as_ref(), Entry { dtype: "F32", shape: tensor.shape(), data_offsets: [begin, data.len()] }));
    }
    let mut metadata: BTreeMap<&str, String> = metadata.clone();
    metadata.remove("sha256");
    let sha = checksum(metadata.iter().map(|(k, v)| (*k, v.as_str())), &data);
    metadata.insert("sha256", sha);
    let mut header = serde_json::to_string(&Header { metadata: &metadata, entries }).unwrap_or_default();
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

/// A tensor's entry in a safetensors header.
#[derive(Serialize)]
struct Entry<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: [usize; 2],
}

/// A safetensors header: `__metadata__`, then the tensors in the order of their data.
struct Header<'a> {
    metadata: &'a BTreeMap<&'a str, String>,
    entries: Vec<(&'a str, Entry<'a>)>,
}

impl Serialize for Header<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1 + self.entries.len()))?;
        map.serialize_entry("__metadata__", self.metadata)?;
        for (name, entry) in &self.entries {
            map.serialize_entry(name, entry)?;
        }
        map.end()
    }
}

// ANCHOR: checksum
/// The `sha256` a file carries: of its data alone in format 1; in format 2 (metadata with
/// `simd_cnn_format`), of the metadata too, written as sorted JSON without `sha256` itself, then
/// the data, so that no value in the file can change unnoticed.
pub fn checksum<'a>(metadata: impl IntoIterator<Item = (&'a str, &'a str)>, data: &[u8]) -> String {
    let metadata: BTreeMap<&str, &str> = metadata.into_iter().filter(|(k, _)| *k != "sha256").collect();
    if !metadata.contains_key("simd_cnn_format") {
        return sha256_hex(data);
    }
    let mut covered = serde_json::to_vec(&metadata).unwrap_or_default();
    covered.extend_from_slice(data);
    sha256_hex(&covered)
}
// ANCHOR_END: checksum

// ------------------------------------------------------------------------------------ reading

// ANCHOR: load_weights
/// The network saved in the weights file `path`, ready to predict. The image size comes from
/// the metadata or, for a file PyTorch wrote without ours, from `fc1.weight`'s shape
/// (`[128, 128 * h/8 * w/8]`, taken as square). With `image_size`, a checkpoint for another size
/// is an error (and a PyTorch file of a non-square network can be read).
pub fn load_weights(path: impl AsRef<Path>, image_size: Option<(usize, usize)>) -> Result<CatDogCnn, CheckpointError> {
    let (plan, weights) = read_weights(&File::read_weights(path.as_ref())?, CATDOG_KIND, image_size)?;
    Ok(catdog(&plan, weights))
}
// ANCHOR_END: load_weights

// ANCHOR: load
/// The network, the optimiser and the run state saved by [`save`] at `path`, to resume
/// training: all of it from the state file beside `path`, which is the whole checkpoint (the
/// weights file may be one save behind after a crash, and is not needed). `image_size` as in
/// [`load_weights`].
pub fn load(
    path: impl AsRef<Path>,
    image_size: Option<(usize, usize)>,
) -> Result<(CatDogCnn, Sgd, TrainState), CheckpointError> {
    let (plan, weights, sgd, state) = load_params(path.as_ref(), CATDOG_KIND, image_size)?;
    Ok((catdog(&plan, weights), sgd, state))
}
// ANCHOR_END: load

/// [`load_weights`] for the network of any `table` on images of `channels` channels.
pub fn load_weights_network(
    path: impl AsRef<Path>,
    table: &[Layer],
    channels: usize,
    image_size: Option<(usize, usize)>,
) -> Result<Network, CheckpointError> {
    let kind = Kind { table, channels };
    let (plan, weights) = read_weights(&File::read_weights(path.as_ref())?, kind, image_size)?;
    Ok(network(kind, &plan, weights))
}

/// [`load`] for the network of any `table` on images of `channels` channels, saved by
/// [`save_network`].
pub fn load_network(
    path: impl AsRef<Path>,
    table: &[Layer],
    channels: usize,
    image_size: Option<(usize, usize)>,
) -> Result<(Network, Sgd, TrainState), CheckpointError> {
    let kind = Kind { table, channels };
    let (plan, weights, sgd, state) = load_params(path.as_ref(), kind, image_size)?;
    Ok((network(kind, &plan, weights), sgd, state))
}

/// Which network a file is read for: its table and the channels of its input. Everything a
/// checkpoint says about a network (names, shapes, the image size of a PyTorch file) is derived
/// from these two.
#[derive(Clone, Copy)]
struct Kind<'a> {
    table: &'a [Layer],
    channels: usize,
}

const CATDOG_KIND: Kind<'static> = Kind { table: &CATDOG, channels: CATDOG_CHANNELS };

/// The cat/dog network of `plan`, holding `weights` (table order, our layout).
fn catdog(plan: &Plan, weights: Vec<Tensor>) -> CatDogCnn {
    let (h, w, _) = plan.input();
    let mut model = CatDogCnn::new(h, w, 0);
    for (param, tensor) in model.params_mut().into_iter().zip(weights) {
        param.value = tensor;
    }
    model
}

/// The network of `kind` and `plan`, holding `weights` (table order, our layout).
fn network(kind: Kind, plan: &Plan, weights: Vec<Tensor>) -> Network {
    let (h, w, c) = plan.input();
    let mut net = Network::new(kind.table, h, w, c, 0);
    for (param, tensor) in net.params_mut().into_iter().zip(weights) {
        param.value = tensor;
    }
    net
}

/// The plan, weights, optimiser and run state of the checkpoint at `path` (see [`load`]).
fn load_params(
    path: &Path,
    kind: Kind,
    image_size: Option<(usize, usize)>,
) -> Result<(Plan, Vec<Tensor>, Sgd, TrainState), CheckpointError> {
    let state = match File::read(&state_path(path)) {
        Err(CheckpointError::NotFound { path: missing }) => {
            // The state file given in place of the weights: say which file to give.
            File::read_weights(path)?;
            return Err(CheckpointError::NotFound { path: missing });
        }
        other => other?,
    };
    if state.content() != Some(CONTENT_STATE) {
        return Err(state.metadata_error("`content` is not `training-state`: not a training-state file".into()));
    }
    let (plan, weights, sgd, train_state) = if state.version() >= 2 {
        read_checkpoint(&state, kind, image_size)?
    } else {
        // Format 1: the weights came from the file beside, which must be of the same save.
        let weights_file = File::read_weights(path)?;
        let (plan, weights) = read_weights(&weights_file, kind, image_size)?;
        check_pair(&weights_file, &state)?;
        let (sgd, train_state) = read_state_v1(&state, kind)?;
        (plan, weights, sgd, train_state)
    };
    validate(&state, &sgd, &train_state)?;
    Ok((plan, weights, sgd, train_state))
}

/// Both files of a format-1 pair carry the same run id, step and image size.
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

/// PyTorch's names and shapes of the parameters of `plan`, each name after `prefix`.
fn expected(plan: &Plan, prefix: &str) -> Vec<(String, Vec<usize>)> {
    plan.param_names()
        .into_iter()
        .zip(plan.torch_shapes())
        .map(|(name, shape)| (format!("{prefix}{name}"), shape))
        .collect()
}

/// The plan of the file's network and its weights, in table order and our layout.
fn read_weights(
    file: &File,
    kind: Kind,
    image_size: Option<(usize, usize)>,
) -> Result<(Plan, Vec<Tensor>), CheckpointError> {
    let plan = file.plan(kind, image_size)?;
    let names = expected(&plan, "");
    file.only(&names)?;
    let weights = file.tensors(&names)?;
    Ok((plan, weights))
}

/// A format-2 state file: the weights, the velocities and the [`RunRecord`].
fn read_checkpoint(
    file: &File,
    kind: Kind,
    image_size: Option<(usize, usize)>,
) -> Result<(Plan, Vec<Tensor>, Sgd, TrainState), CheckpointError> {
    let plan = file.plan(kind, image_size)?;
    let text = file.meta("training_state")?;
    let record: RunRecord =
        serde_json::from_str(text).map_err(|e| file.metadata_error(format!("`training_state`: {e}")))?;
    let (weights, velocities) = (expected(&plan, ""), expected(&plan, VELOCITY_PREFIX));
    let allowed: Vec<_> =
        weights.iter().chain(if record.velocities { &velocities[..] } else { &[] }).cloned().collect();
    file.only(&allowed)?;
    let weights = file.tensors(&weights)?;
    let mut sgd = Sgd::new(record.lr, record.momentum);
    if record.velocities {
        sgd.set_velocity(file.tensors(&velocities)?);
    }
    let schedule = record.schedule.parse().map_err(|e: UnknownSchedule| file.metadata_error(e.to_string()))?;
    let run = file.meta("run")?;
    let state = TrainState {
        run_id: u64::from_str_radix(run, 16)
            .map_err(|_| file.metadata_error(format!("`run` {run:?} is not hexadecimal")))?,
        step: file.parse("step")?,
        seed: record.seed,
        hyper: Hyperparameters {
            batch_size: record.batch_size,
            augment: record.augment,
            val_fraction: record.val_fraction,
            epochs: record.epochs,
            base_lr: record.base_lr,
            schedule,
            conv: match record.conv.as_str() {
                "" => ConvAlgorithm::Direct,
                name => name.parse().map_err(|e: ConvAlgorithmError| file.metadata_error(e.to_string()))?,
            },
            precision: match record.precision.as_str() {
                "" => Precision::Fp32,
                name => name.parse().map_err(|e: PrecisionError| file.metadata_error(e.to_string()))?,
            },
            limit: record.limit,
        },
        epoch: record.epoch,
        batch: record.batch,
        current: EpochStats::from_sums(record.epoch_loss_sum, record.epoch_correct, record.epoch_seen),
        current_seconds: record.epoch_seconds,
        history: record.history,
    };
    Ok((plan, weights, sgd, state))
}

/// A format-1 state file: the velocities under the parameters' names, the state as one
/// metadata string per value.
fn read_state_v1(file: &File, kind: Kind) -> Result<(Sgd, TrainState), CheckpointError> {
    let plan = file.plan(kind, None)?;
    let mut sgd = Sgd::new(file.parse("lr")?, file.parse("momentum")?);
    if file.parse::<bool>("velocities")? {
        let names = expected(&plan, "");
        file.only(&names)?;
        sgd.set_velocity(file.tensors(&names)?);
    } else {
        file.only(&[])?;
    }
    let limit = match file.meta("limit")? {
        "none" => None,
        _ => Some(file.parse("limit")?),
    };
    let schedule = file.meta("schedule")?.parse().map_err(|e: UnknownSchedule| file.metadata_error(e.to_string()))?;
    let hyper = Hyperparameters {
        batch_size: file.parse("batch_size")?,
        augment: file.parse("augment")?,
        val_fraction: file.parse("val_fraction")?,
        epochs: file.parse("epochs")?,
        base_lr: file.parse("base_lr")?,
        schedule,
        limit,
        conv: ConvAlgorithm::Direct,
        precision: Precision::Fp32,
    };
    let run = file.meta("run")?;
    let history: Vec<EpochMetrics> =
        serde_json::from_str(file.meta("history")?).map_err(|e| file.metadata_error(format!("`history`: {e}")))?;
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
        history,
    };
    Ok((sgd, state))
}

// ANCHOR: validate
/// Every value of a run state checked against what a real run can hold: a checkpoint that
/// passes its checksum but was written by something else, or edited, is an error that names the
/// value, never a run that trains zero steps or a billion epochs.
fn validate(file: &File, sgd: &Sgd, state: &TrainState) -> Result<(), CheckpointError> {
    let h = &state.hyper;
    let (loss_sum, correct, seen) = state.current.sums();
    let checks: [(bool, String); 10] = [
        (sgd.lr.is_finite() && sgd.lr > 0.0, format!("learning rate {}", sgd.lr)),
        ((0.0..1.0).contains(&sgd.momentum), format!("momentum {}", sgd.momentum)),
        (h.base_lr.is_finite() && h.base_lr > 0.0, format!("base learning rate {}", h.base_lr)),
        ((1..=MAX_COUNT).contains(&h.batch_size), format!("batch size {}", h.batch_size)),
        ((0.0..1.0).contains(&h.val_fraction), format!("validation fraction {}", h.val_fraction)),
        (h.limit != Some(0), "limit 0".to_string()),
        (
            (1..=MAX_COUNT).contains(&h.epochs) && state.epoch <= h.epochs,
            format!("epoch {} of {}", state.epoch, h.epochs),
        ),
        (
            state.history.len() == state.epoch && state.history.iter().enumerate().all(|(i, m)| m.epoch == i + 1),
            format!("{} epochs done but {} in the history", state.epoch, state.history.len()),
        ),
        (
            (state.batch as u64) <= state.step
                && (state.epoch < h.epochs || state.batch == 0)
                && state.batch.checked_mul(h.batch_size) == Some(seen)
                && correct <= seen,
            format!("batch {} (step {}, {seen} images seen, {correct} right)", state.batch, state.step),
        ),
        (
            loss_sum.is_finite()
                && loss_sum >= 0.0
                && state.current_seconds.is_finite()
                && state.current_seconds >= 0.0,
            format!("running loss {loss_sum} or seconds {}", state.current_seconds),
        ),
    ];
    match checks.into_iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err(file.metadata_error(format!("{what}: out of range for a training run"))),
        None => Ok(()),
    }
}
// ANCHOR_END: validate

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
            && *expected != checksum(meta.iter().map(|(k, v)| (k.as_str(), v.as_str())), &bytes[data_start..])
        {
            return Err(corrupt("the data or metadata does not match the SHA-256 in its metadata (damaged)".into()));
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

    /// The `simd_cnn_format` of the file: 1 for files without it.
    fn version(&self) -> u32 {
        self.meta.get("simd_cnn_format").and_then(|v| v.parse().ok()).unwrap_or(1)
    }

    /// Refuses any tensor not in `allowed`, as PyTorch's strict `load_state_dict` does.
    fn only(&self, allowed: &[(String, Vec<usize>)]) -> Result<(), CheckpointError> {
        match self.header.tensors().into_keys().find(|n| !allowed.iter().any(|(a, _)| a == n)) {
            Some(name) => Err(CheckpointError::UnexpectedTensor { path: self.path.clone(), name }),
            None => Ok(()),
        }
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

    /// The plan of `kind`'s network for the image size the file was saved for.
    fn plan(&self, kind: Kind, expected: Option<(usize, usize)>) -> Result<Plan, CheckpointError> {
        let (h, w) = self.image_size(kind, expected)?;
        Ok(Plan::new(kind.table, h, w, kind.channels))
    }

    // ANCHOR: image_size
    /// The image size the file was saved for, checked against `expected` when given. A file
    /// without our metadata (PyTorch's) tells it by its first linear layer, which takes
    /// `cell * (h/s) * (w/s)` inputs, `s` being 2^pools (8 for the cat/dog network) and `cell`
    /// the features of one `s` x `s` square (128 for it: `fc1.weight` is `[128, 128 * h/8 * w/8]`).
    fn image_size(&self, kind: Kind, expected: Option<(usize, usize)>) -> Result<(usize, usize), CheckpointError> {
        let s = 1usize << kind.table.iter().filter(|l| matches!(l, Layer::MaxPool2d { .. })).count();
        let found = if self.meta.contains_key("image_height") || self.meta.contains_key("image_width") {
            (self.parse("image_height")?, self.parse("image_width")?)
        } else {
            let first_linear =
                Plan::new(kind.table, s, s, kind.channels).steps().iter().find_map(|step| match step.op {
                    StepOp::Linear(l) => Some((format!("{}.weight", step.name), l)),
                    _ => None,
                });
            let Some((name, linear)) = first_linear else {
                return Err(self.metadata_error("no image size (`image_height`, `image_width`)".into()));
            };
            let (out, cell) = (linear.out_features, linear.in_features);
            let in_features = self.info(&name, &[out, 0])?.shape[1];
            match expected {
                Some((h, w)) if (h / s).checked_mul(w / s).and_then(|c| c.checked_mul(cell)) == Some(in_features) => {
                    (h, w)
                }
                _ => square_side(in_features, cell, s).map(|side| (side, side)).ok_or_else(|| {
                    self.metadata_error(format!(
                        "no image size, and {name} [{out}, {in_features}] is not the layer of a square image"
                    ))
                })?,
            }
        };
        let valid = |side: usize| side > 0 && side <= MAX_SIDE && side.is_multiple_of(s);
        if !valid(found.0) || !valid(found.1) {
            return Err(self.metadata_error(format!(
                "image size {}x{}: sides must be multiples of {s} up to {MAX_SIDE}",
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
    /// The tensors `expected` (PyTorch's names and shapes), float32 and finite, converted to our
    /// layout (convolution weights HWIO).
    fn tensors(&self, expected: &[(String, Vec<usize>)]) -> Result<Vec<Tensor>, CheckpointError> {
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

/// The side of a square image whose first linear layer takes `in_features = cell * (side/s)^2`
/// inputs.
fn square_side(in_features: usize, cell: usize, s: usize) -> Option<usize> {
    if in_features == 0 || cell == 0 || !in_features.is_multiple_of(cell) {
        return None;
    }
    let cells = in_features / cell;
    let root = cells.isqrt();
    (root * root == cells).then(|| s.checked_mul(root)).flatten()
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
