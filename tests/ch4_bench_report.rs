//! Chapter 4: the pieces of the benchmark report that do not depend on timing: the op list and
//! its FLOP counts, the arithmetic of the report, its JSON and markdown, and the parsers of
//! the system's CPU counters.

use simd_cnn::bench::{
    CATDOG_BATCH, LayerShape, MNIST_BATCH, Machine, MachineCpu, Measurement, Model, Noise, OpKind, Peak, Report,
    Timing, catdog_layers, filter_ops, fmt_percent, fmt_rate, fmt_seconds, forward_flops, kernel_ops, min_median_max,
    mnist_layers, parse_schedstat, report_ops, training_flops,
};
use simd_cnn::kernels::{Isa, Kernels, Pool2dShape};
use simd_cnn::model::{CatDogCnn, Mlp};

#[test]
fn report_ops_are_every_layer_and_direction_in_network_order() {
    let names: Vec<String> = report_ops().into_iter().map(|op| op.name).collect();
    let expected = [
        // conv1 reads the image: nothing needs its input gradient.
        "conv1_forward",
        "conv1_backward_weight",
        "pool1_forward",
        "pool1_backward",
        "conv2_forward",
        "conv2_backward_input",
        "conv2_backward_weight",
        "pool2_forward",
        "pool2_backward",
        "conv3_forward",
        "conv3_backward_input",
        "conv3_backward_weight",
        "pool3_forward",
        "pool3_backward",
        "fc1_forward",
        "fc1_backward",
        "fc1_backward_sweep",
        "fc1_backward_update",
        "fc2_forward",
        "fc2_backward",
        "mlp_fc1_forward",
        "mlp_fc1_backward",
        "mlp_fc2_forward",
        "mlp_fc2_backward",
        "mlp_fc3_forward",
        "mlp_fc3_backward",
        "train_step_catdog",
        "train_step_mnist",
    ];
    // From chapter 7 on, each convolution's passes by im2col beside the direct ones, fc1's
    // backward pass in one sweep and with the update fused beside the plain one, and chapter
    // 6's unfused step beside the fused one.
    let ch7 = Kernels::scalar().keeps_pool_winners();
    assert_eq!(Kernels::scalar().has_im2col(), ch7);
    let ch6 = ch7.then_some("train_step_catdog_ch6".to_string());
    let expected = expected
        .into_iter()
        .filter(|&n| ch7 || !["fc1_backward_sweep", "fc1_backward_update"].contains(&n))
        .flat_map(|n| {
            let im2col = (ch7 && n.starts_with("conv")).then(|| format!("{n}_im2col"));
            std::iter::once(n.to_string()).chain(im2col)
        });
    assert_eq!(names, expected.chain(ch6).collect::<Vec<_>>());
}

#[test]
fn benchmark_shapes_are_the_networks_shapes() {
    let cnn = CatDogCnn::new(128, 128, 0);
    let layers = catdog_layers();
    let shape = |name: &str| layers.iter().find(|l| l.name == name).unwrap().shape;
    let n = CATDOG_BATCH;
    assert_eq!(shape("conv1"), LayerShape::Conv2d(cnn.conv1.shape(n, 128, 128)));
    assert_eq!(shape("conv2"), LayerShape::Conv2d(cnn.conv2.shape(n, 64, 64)));
    assert_eq!(shape("conv3"), LayerShape::Conv2d(cnn.conv3.shape(n, 32, 32)));
    assert_eq!(shape("fc1"), LayerShape::Linear(cnn.fc1.shape(n)));
    assert_eq!(shape("fc2"), LayerShape::Linear(cnn.fc2.shape(n)));
    // Each pool halves the output of the convolution before it.
    for (pool, conv, h) in [("pool1", &cnn.conv1, 128), ("pool2", &cnn.conv2, 64), ("pool3", &cnn.conv3, 32)] {
        let expected = Pool2dShape { n, h, w: h, c: conv.c_out() };
        assert_eq!(shape(pool), LayerShape::MaxPool2d { shape: expected, fuse_relu: true });
    }
    let mlp = Mlp::new(0);
    let mlp_shapes: Vec<LayerShape> = mnist_layers().iter().map(|l| l.shape).collect();
    let expected: Vec<LayerShape> =
        [&mlp.fc1, &mlp.fc2, &mlp.fc3].iter().map(|fc| LayerShape::Linear(fc.shape(MNIST_BATCH))).collect();
    assert_eq!(mlp_shapes, expected);
}

/// anchors/RESULTS.md counts 338.7 MFLOP per image forward and 987.8 MFLOP per training image
/// (conv1 without input gradient) for the CNN, 218,368 and 454,400 FLOP for the MLP; our counts
/// come from the shapes alone. The exact figures: 169,345,152 multiply-adds forward; training
/// adds the weight gradients (the same again) and the input gradients of every layer but conv1
/// (the same less conv1's 14,155,776), 493,879,680 multiply-adds in all.
#[test]
fn flop_counts_per_image_match_the_reference_figures() {
    let per_image = |flops: u64, batch: usize| {
        assert_eq!(flops % batch as u64, 0);
        flops / batch as u64
    };
    let cnn = catdog_layers();
    assert_eq!(per_image(forward_flops(&cnn), CATDOG_BATCH), 2 * 169_345_152);
    assert_eq!(per_image(training_flops(&cnn), CATDOG_BATCH), 2 * 493_879_680);
    assert_eq!((per_image(forward_flops(&cnn), CATDOG_BATCH) as f64 / 1e5).round() / 10.0, 338.7);
    assert_eq!((per_image(training_flops(&cnn), CATDOG_BATCH) as f64 / 1e5).round() / 10.0, 987.8);

    let mlp = mnist_layers();
    assert_eq!(per_image(forward_flops(&mlp), MNIST_BATCH), 218_368);
    assert_eq!(per_image(training_flops(&mlp), MNIST_BATCH), 454_400);

    let step = |model| report_ops().into_iter().find(|op| op.kind == OpKind::TrainStep(model)).unwrap();
    assert_eq!(step(Model::CatDog).flops(), training_flops(&cnn));
    assert_eq!(step(Model::CatDog).images(), Some(CATDOG_BATCH));
    assert_eq!(step(Model::Mnist).flops(), training_flops(&mlp));
    assert_eq!(step(Model::Mnist).images(), Some(MNIST_BATCH));
}

#[test]
fn each_op_counts_the_work_of_its_kernels() {
    let flops = |name: &str| report_ops().into_iter().find(|op| op.name == name).unwrap().flops();
    // conv2: 16 images of 64x64 outputs, 9 taps of 32 inputs for each of 64 outputs.
    let conv2 = 2 * 16 * 64 * 64 * 9 * 32 * 64;
    assert_eq!(flops("conv2_forward"), conv2);
    assert_eq!(flops("conv2_backward_input"), conv2);
    assert_eq!(flops("conv2_backward_weight"), conv2);
    // Both gradients of fc1 (16 x 32768 x 128), only the weight gradient of the MLP's first layer.
    assert_eq!(flops("fc1_backward"), 2 * flops("fc1_forward"));
    if let Some(sweep) = report_ops().into_iter().find(|op| op.name == "fc1_backward_sweep") {
        assert_eq!(sweep.flops(), flops("fc1_backward"));
    }
    assert_eq!(flops("fc1_forward"), 2 * 16 * 32768 * 128);
    assert_eq!(flops("mlp_fc1_backward"), flops("mlp_fc1_forward"));
    assert_eq!(flops("mlp_fc2_backward"), 2 * flops("mlp_fc2_forward"));
    // Pooling counts 3 comparisons per output: pool1 has 16 x 64 x 64 x 32 outputs.
    assert_eq!(flops("pool1_forward"), 3 * 16 * 64 * 64 * 32);
    assert!(report_ops().iter().all(|op| op.flops() > 0));
}

#[test]
fn kernel_ops_cover_every_kernel_of_a_training_step() {
    let ops = kernel_ops();
    let names = |kernel: &str| -> Vec<String> {
        ops.iter().filter(|op| op.kind.kernel_name() == kernel).map(|op| op.layer.clone()).collect()
    };
    assert_eq!(names("conv2d_forward"), ["conv1", "conv2", "conv3"]);
    assert_eq!(names("conv2d_backward_input"), ["conv2", "conv3"]);
    assert_eq!(names("conv2d_backward_weight"), ["conv1", "conv2", "conv3"]);
    assert_eq!(names("max_pool2d_forward"), ["pool1", "pool2", "pool3"]);
    assert_eq!(names("max_pool2d_backward"), ["pool1", "pool2", "pool3"]);
    assert_eq!(names("linear_forward"), ["fc1", "fc2", "mlp_fc1", "mlp_fc2", "mlp_fc3"]);
    assert_eq!(names("linear_backward_input"), ["fc1", "fc2", "mlp_fc2", "mlp_fc3"]);
    assert_eq!(names("linear_backward_weight"), ["fc1", "fc2", "mlp_fc1", "mlp_fc2", "mlp_fc3"]);
    assert_eq!(names("relu_forward"), ["fc1", "mlp_fc1", "mlp_fc2"]);
    assert_eq!(names("axpy"), ["catdog", "mnist"]);
    assert_eq!(names("sgd_momentum_update"), ["catdog", "mnist"]);
    // The SGD update touches every parameter once: 4,293,793 of the CNN, 109,386 of the MLP.
    let axpy = |layer: &str| ops.iter().find(|op| op.kind.kernel_name() == "axpy" && op.layer == layer).unwrap();
    assert_eq!(axpy("catdog").flops(), 896 + 18_496 + 73_856 + 4_194_432 + 129);
    assert_eq!(axpy("mnist").flops(), 100_480 + 8_256 + 650);
}

#[test]
fn only_keeps_the_ops_whose_name_contains_the_text() {
    let names = |only| filter_ops(report_ops(), only).into_iter().map(|op| op.name).collect::<Vec<_>>();
    let conv2 = [
        "conv2_forward",
        "conv2_forward_im2col",
        "conv2_backward_input",
        "conv2_backward_input_im2col",
        "conv2_backward_weight",
        "conv2_backward_weight_im2col",
    ];
    let im2col = Kernels::scalar().has_im2col();
    let kept =
        |names: &[&'static str]| names.iter().copied().filter(|n| im2col || !n.ends_with("im2col")).collect::<Vec<_>>();
    assert_eq!(names(Some("conv2")), kept(&conv2));
    assert_eq!(
        names(Some("backward_input")),
        kept(&[
            "conv2_backward_input",
            "conv2_backward_input_im2col",
            "conv3_backward_input",
            "conv3_backward_input_im2col"
        ])
    );
    let steps = names(Some("train_step"));
    assert_eq!(steps[..2], ["train_step_catdog", "train_step_mnist"]);
    assert_eq!(steps.len(), if Kernels::scalar().keeps_pool_winners() { 3 } else { 2 });
    assert_eq!(names(Some("mlp_fc3")), ["mlp_fc3_forward", "mlp_fc3_backward"]);
    assert!(names(Some("no such op")).is_empty());
    assert_eq!(names(None).len(), report_ops().len());
}

fn timing(seconds: f64) -> Timing {
    Timing {
        seconds,
        min_seconds: seconds * 0.99,
        max_seconds: seconds * 1.01,
        calls_per_run: 3,
        runs: 5,
        cpu_fraction: Some(1.0),
        other_load: Some(0.0),
    }
}

fn machine() -> Machine {
    Machine {
        cpu_model: "Test CPU".to_string(),
        logical_cpus: 2,
        os: "linux".to_string(),
        arch: "x86_64".to_string(),
        rustc: "rustc 1.95.0".to_string(),
        cpu_isas: Isa::ALL.to_vec(),
        available_isas: Isa::ALL.to_vec(),
        debug_assertions: false,
    }
}

/// Peaks of 10, 40, 80 and 160 GFLOP/s; conv2_forward (2.4 GFLOP) in 1 s scalar and 0.05 s
/// AVX-512, and a cat/dog training step (15.8 GFLOP, 16 images) in 2 s scalar.
fn sample_report() -> Report {
    let peaks = [(Isa::Scalar, 10.0), (Isa::Sse, 40.0), (Isa::Avx2, 80.0), (Isa::Avx512, 160.0)]
        .map(|(isa, gflops)| Peak { isa, gflops, timing: timing(1e-3) })
        .to_vec();
    let op = |name: &str| report_ops().into_iter().find(|op| op.name == name).unwrap();
    let measure = |name: &str, isa, seconds| {
        let op = op(name);
        Measurement { op: op.name.clone(), isa, flops: op.flops(), images: op.images(), timing: timing(seconds) }
    };
    let measurements = vec![
        measure("conv2_forward", Isa::Scalar, 1.0),
        measure("conv2_forward", Isa::Avx512, 0.05),
        measure("train_step_catdog", Isa::Scalar, 2.0),
    ];
    Report::new(machine(), peaks, measurements)
}

#[test]
fn records_set_each_time_against_the_peaks_and_scalar() {
    let report = sample_report();
    let conv2 = 2.0 * 16.0 * 64.0 * 64.0 * 9.0 * 32.0 * 64.0 * 1e-9; // GFLOP per call
    let r = &report.records[1];
    assert_eq!((r.op.as_str(), r.isa), ("conv2_forward", Isa::Avx512));
    assert!((r.gflops - conv2 / 0.05).abs() < 1e-9);
    assert!((r.peak_fraction.unwrap() - conv2 / 0.05 / 160.0).abs() < 1e-12);
    assert!((r.isa_peak_fraction.unwrap() - conv2 / 0.05 / 160.0).abs() < 1e-12);
    assert!((r.speedup_vs_scalar.unwrap() - 20.0).abs() < 1e-12);
    assert_eq!(r.images_per_second, None);

    let scalar = &report.records[0];
    assert!((scalar.isa_peak_fraction.unwrap() - conv2 / 10.0).abs() < 1e-12);
    assert!((scalar.peak_fraction.unwrap() - conv2 / 160.0).abs() < 1e-12);
    assert_eq!(scalar.speedup_vs_scalar, Some(1.0));

    let step = &report.records[2];
    assert_eq!(step.images_per_second, Some(8.0));
    assert_eq!(report.reference_isa(), Some(Isa::Avx512));
}

#[test]
fn without_avx512_the_highest_peak_is_the_reference() {
    let mut report = sample_report();
    report.peaks.retain(|p| p.isa != Isa::Avx512);
    assert_eq!(report.reference_isa(), Some(Isa::Avx2));
    let json = report.to_json();
    assert!(json["peaks"]["avx512"].is_null());
    assert_eq!(json["peaks"]["avx2"], 80.0);
}

#[test]
fn json_has_the_machine_the_peaks_and_one_record_per_measurement() {
    let report = sample_report();
    let text = serde_json::to_string_pretty(&report.to_json()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["machine"]["cpu_model"], "Test CPU");
    assert_eq!(json["machine"]["logical_cpus"], 2);
    assert_eq!(json["machine"]["rustc"], "rustc 1.95.0");
    let mut peaks: Vec<&String> = json["peaks"].as_object().unwrap().keys().collect();
    peaks.sort();
    assert_eq!(peaks, ["avx2", "avx512", "scalar", "sse"]);
    assert_eq!(json["peaks"]["avx512"], 160.0);
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for key in ["op", "isa", "gflops", "peak_fraction", "isa_peak_fraction", "speedup_vs_scalar", "seconds", "spread"] {
        assert!(records.iter().all(|r| r.get(key).is_some()), "every record has {key}");
    }
    assert_eq!(records[1]["op"], "conv2_forward");
    assert_eq!(records[1]["isa"], "avx512");
    assert_eq!(records[1]["speedup_vs_scalar"], 20.0);
    assert_eq!(records[2]["images_per_second"], 8.0);
    assert!(records[0]["images_per_second"].is_null());
    assert!(records.iter().all(|r| r["noise"].is_null()));
}

#[test]
fn markdown_has_a_row_per_record_and_flags_disturbed_ones() {
    let mut report = sample_report();
    let md = report.to_markdown();
    let table: Vec<&str> =
        md.lines().skip_while(|l| !l.starts_with("| op |")).take_while(|l| l.starts_with('|')).collect();
    assert_eq!(table[0], "| op | ISA | GFLOP/s | % of AVX-512 peak | % of ISA peak | vs scalar | per call | spread |");
    assert_eq!(table[1], "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    assert_eq!(table.len(), 2 + report.records.len());
    // conv2_forward in 0.05 s with AVX-512: 48.3 GFLOP/s, 30.2 % of 160, 20x scalar.
    assert_eq!(table[3], "| conv2_forward | AVX-512 | 48.3 | 30.2 % | 30.2 % | 20.00x | 50.0 ms | 2.0 % |");
    assert!(md.contains("| train_step_catdog | scalar | 8.00 | 2.00 s |"), "{md}");
    assert!(md.contains("| AVX-512 | 160 |"));
    assert!(!md.contains('⚠'));

    report.records[1].timing.cpu_fraction = Some(0.5);
    let md = report.to_markdown();
    assert!(md.contains("| 50.0 ms | 2.0 % ⚠ |"), "{md}");
    assert!(md.contains("conv2_forward / avx512: waited for a CPU 50 % of the time"), "{md}");
    // Past 10 disturbed measurements, one line per kind of disturbance.
    let mut busy = report.clone();
    for _ in 0..4 {
        busy.records.extend(busy.records.clone());
    }
    for (i, r) in busy.records.iter_mut().enumerate() {
        r.timing.cpu_fraction = Some(if i % 2 == 0 { 0.9 } else { 0.6 });
    }
    busy.records[1].timing.cpu_fraction = Some(1.0);
    busy.records[1].timing.other_load = Some(0.7);
    let md = busy.to_markdown();
    assert!(md.contains("The machine disturbed 48 of 52 measurements"), "{md}");
    assert!(md.contains("- 47 measurements, the worst: waited for a CPU 40 % of the time\n"), "{md}");
    assert!(md.contains("- 1 measurement, the worst: other programs kept 0.7 cores busy\n"), "{md}");
    assert!(!md.contains("conv2_forward / avx512:"), "{md}");

    // A peak is its fastest call: only disagreement between runs makes it suspect.
    report.peaks[0].timing.cpu_fraction = Some(0.5);
    assert!(!report.to_markdown().contains("scalar peak:"));
    report.peaks[0].timing.max_seconds = 2.0 * report.peaks[0].timing.seconds;
    assert!(report.to_markdown().contains("scalar peak: runs differed by 101 %"), "{}", report.to_markdown());
}

#[test]
fn numbers_are_printed_with_three_significant_figures() {
    assert_eq!(fmt_rate(263.46), "263");
    assert_eq!(fmt_rate(41.25), "41.2");
    assert_eq!(fmt_rate(3.071), "3.07");
    assert_eq!(fmt_rate(0.05123), "0.0512");
    assert_eq!(fmt_rate(f64::NAN), "–");
    assert_eq!(fmt_percent(Some(0.1234)), "12.3 %");
    assert_eq!(fmt_seconds(1.2834), "1.28 s");
    assert_eq!(fmt_seconds(0.175), "175 ms");
    assert_eq!(fmt_seconds(0.00000204), "2.04 µs");
    assert_eq!(fmt_seconds(0.00000085), "850 ns");
    assert_eq!(fmt_percent(None), "–");
}

#[test]
fn noise_is_judged_on_cpu_share_other_load_and_spread() {
    assert_eq!(Noise::judge(Some(1.0), Some(0.0), 0.01), None);
    let preempted = Noise::judge(Some(0.9), Some(0.0), 0.01);
    assert!(matches!(preempted, Some(Noise::Preempted(share)) if (share - 0.1).abs() < 1e-12), "{preempted:?}");
    assert_eq!(Noise::judge(Some(1.0), Some(0.8), 0.01), Some(Noise::BusyMachine(0.8)));
    assert_eq!(Noise::judge(None, None, 0.3), Some(Noise::Unsteady(0.3)));
    assert_eq!(Noise::judge(None, None, 0.05), None);
}

#[test]
fn system_counters_are_parsed() {
    assert_eq!(parse_schedstat("123456789 2000 17\n"), Some((123_456_789, 2000)));
    assert_eq!(parse_schedstat("garbage"), None);
    let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
    let before = MachineCpu::parse(stat).unwrap();
    assert_eq!(before, MachineCpu { busy: 150, idle: 850, cpus: 2 });
    // 100 ticks later, 75 of them busy: 1.5 of 2 CPUs.
    let after = MachineCpu { busy: 225, idle: 875, cpus: 2 };
    assert_eq!(after.busy_cores_since(&before), Some(1.5));
    assert_eq!(before.busy_cores_since(&before), None);
    assert_eq!(MachineCpu::parse("intr 1\n"), None);
    assert_eq!(min_median_max(&mut [3.0, 1.0, 2.0, 10.0]), (1.0, 2.5, 10.0));
    assert_eq!(min_median_max(&mut [3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
}

#[test]
fn cpu_model_is_read_from_cpuinfo() {
    let x86 = "processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t: fpu\n";
    assert_eq!(simd_cnn::bench::cpu_model(x86).as_deref(), Some("AMD EPYC (family 26, model 2)"));
    let name_only = "model name\t: AMD EPYC 9B45\n";
    assert_eq!(simd_cnn::bench::cpu_model(name_only).as_deref(), Some("AMD EPYC 9B45"));
    let arm = "processor\t: 0\nCPU part\t: 0xd0c\n";
    assert_eq!(simd_cnn::bench::cpu_model(arm).as_deref(), Some("0xd0c"));
    assert_eq!(simd_cnn::bench::cpu_model("processor : 0\n"), None);
}
