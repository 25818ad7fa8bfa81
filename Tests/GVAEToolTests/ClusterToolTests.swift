// Data-parallel training under Open MPI's mpirun: two ranks train what one process trains.
// Skipped (and shown as skipped) where mpirun is not installed (Debian: openmpi-bin).
import Foundation
import Testing

let mpirunPath: String? = {
  let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
  return dirs.map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

@Suite(.enabled(if: mpirunPath != nil, "mpirun not found (install openmpi-bin)"))
struct ClusterToolTests {
  /// `mpirun -np N gvae …`, one BLAS thread per rank; stdin goes to rank 0.
  func mpirun(_ n: Int, _ arguments: [String], stdin: URL? = nil) throws -> ToolResult {
    let binary = try #require(gvaeBinary)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(mpirunPath))
    p.arguments = ["--oversubscribe", "-np", String(n), binary.path] + arguments
    p.environment = ProcessInfo.processInfo.environment.merging([
      "OPENBLAS_NUM_THREADS": "1", "GVAE_BLAS_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    ]) { $1 }
    // stderr through a file, stdout through a pipe read to the end: no deadlock.
    let stderrFile = try temporaryFile("", name: "mpirun-stderr-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: stderrFile) }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = try FileHandle(forWritingTo: stderrFile)
    p.standardInput = try stdin.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ToolResult(
      stdout: String(decoding: o, as: UTF8.self),
      stderr: String(decoding: try Data(contentsOf: stderrFile), as: UTF8.self), status: p.terminationStatus)
  }

  /// The one-process reference of a sharded job, with one BLAS thread like each rank: OpenBLAS
  /// splits a product between threads at other row boundaries, which changes float rounding.
  func oneProcess(_ arguments: [String], stdin: String = "") throws -> ToolResult {
    try gvae(arguments, stdin: stdin, environment: ["OPENBLAS_NUM_THREADS": "1", "GVAE_BLAS_THREADS": "1"])
  }

  func training(_ output: String, epochs: Int, preset: String = "tiny", batch: Int = 10) throws -> [String] {
    let data = try temporaryFile(
      (0..<60).map { i in ["x + \(i % 3 + 1)", "sin(x) * \(i % 3 + 1)", "x * x + \(i % 3 + 1)", "exp(x) / \(i % 3 + 1)"][i % 4] }
        .joined(separator: "\n") + "\n", name: "ddp-data.txt")
    return [
      "train", "--grammar", "equation", "--preset", preset, "--data", data.path, "--output", output,
      "--epochs", String(epochs), "--batch-size", String(batch), "--seed", "3", "--validation-fraction", "0.2",
    ]
  }

  func epochs(_ model: String) throws -> [(train: Double, validation: Double)] {
    try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
      guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
        o["event"] as? String == "epoch"
      else { return nil }
      return (try #require(o["trainLoss"] as? Double), try #require(o["validationLoss"] as? Double))
    }
  }

  /// Same global batch and seed: the same loss curve (to float rounding: gradients are summed
  /// in another order) and the same weights; only rank 0 writes.
  @Test func twoRanksTrainWhatOneProcessTrains() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let one = dir.appendingPathComponent("one.safetensors").path
    let two = dir.appendingPathComponent("two.safetensors").path
    let a = try gvae(try training(one, epochs: 3))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try mpirun(2, try training(two, epochs: 3))
    #expect(b.status == 0, "\(b.stderr)")
    let (ea, eb) = (try epochs(one), try epochs(two))
    #expect(ea.count == 3 && eb.count == 3)
    for (x, y) in zip(ea, eb) {
      #expect(abs(x.train - y.train) <= 1e-5 * abs(x.train), "\(x) vs \(y)")
      #expect(abs(x.validation - y.validation) <= 1e-5 * abs(x.validation), "\(x) vs \(y)")
    }
    // One progress stream, not two.
    #expect(b.stderr.components(separatedBy: "gvae: finished 3 epochs").count == 2, "\(b.stderr)")
    // The same weights: both files decode a latent alike.
    let z = "0.1 -0.2 0.3 0.0 0.5 -0.1 0.2 0.05\n"
    let da = try gvae(["decode", "--model", one], stdin: z)
    let db = try gvae(["decode", "--model", two], stdin: z)
    #expect(da.status == 0 && da.stdout == db.stdout)
  }

  /// The paper's equation network has batch norm: synchronised over the ranks, its
  /// statistics are the global batch's, so two ranks train what one process trains.
  @Test func batchNormPresetTrainsDataParallel() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let one = dir.appendingPathComponent("one.safetensors").path
    let two = dir.appendingPathComponent("two.safetensors").path
    let a = try gvae(try training(one, epochs: 3, preset: "equation"))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try mpirun(2, try training(two, epochs: 3, preset: "equation"))
    #expect(b.status == 0, "\(b.stderr)")
    let (ea, eb) = (try epochs(one), try epochs(two))
    #expect(ea.count == 3 && eb.count == 3)
    for (x, y) in zip(ea, eb) {
      #expect(abs(x.train - y.train) <= 1e-5 * abs(x.train), "\(x) vs \(y)")
      #expect(abs(x.validation - y.validation) <= 1e-5 * abs(x.validation), "\(x) vs \(y)")
    }
    // The running statistics match too: both models decode a latent alike.
    let z = (0..<25).map { String(format: "%.2f", sin(Double($0))) }.joined(separator: " ") + "\n"
    let da = try gvae(["decode", "--model", one], stdin: z)
    let db = try gvae(["decode", "--model", two], stdin: z)
    #expect(da.status == 0 && da.stdout == db.stdout)
    // 48 training strings in batches of 47 leave a batch of 1: a rank would have no rows.
    let c = try mpirun(2, try training(dir.appendingPathComponent("three.safetensors").path, epochs: 1, preset: "equation", batch: 47))
    #expect(c.status != 0 && c.stderr.contains("a batch of 1 rows leaves a rank of 2 without any"), "\(c.stderr)")
  }

  /// A checkpoint written by two ranks resumes in one process, and the run ends where a
  /// single uninterrupted run ends.
  @Test func resumeWithAnotherNumberOfRanks() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let straight = dir.appendingPathComponent("straight.safetensors").path
    let resumed = dir.appendingPathComponent("resumed.safetensors").path
    #expect(try gvae(try training(straight, epochs: 3)).status == 0)
    let first = try mpirun(2, try training(resumed, epochs: 2))
    #expect(first.status == 0, "\(first.stderr)")
    let rest = try gvae(try training(resumed, epochs: 3) + ["--resume"])
    #expect(rest.status == 0, "\(rest.stderr)")
    let (a, b) = (try epochs(straight), try epochs(resumed))
    let (x, y) = (try #require(a.last), try #require(b.last))
    #expect(abs(x.train - y.train) <= 1e-5 * abs(x.train), "\(x) vs \(y)")
  }

  /// The image VAE trains data-parallel too: ELBO and IWAE bound, 2 and 3 ranks (a batch of
  /// 10 does not split evenly in 3), the same curve as one process and one writer.
  @Test(arguments: [(2, "1"), (3, "3")]) func imageVAETrainsDataParallel(ranks: Int, samples: String) throws {
    let dir = try tinyMNIST()
    func args(_ output: String, epochs: Int = 3) -> [String] {
      [
        "image", "vae", "train", "--data", dir.path, "--output", output, "--epochs", String(epochs), "--batch-size", "10",
        "--validation-count", "10", "--seed", "2", "--importance-samples", samples,
      ]
    }
    let one = dir.appendingPathComponent("one.safetensors").path
    let many = dir.appendingPathComponent("many.safetensors").path
    let a = try gvae(args(one))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try mpirun(ranks, args(many))
    #expect(b.status == 0, "\(b.stderr)")
    func curve(_ m: String) throws -> [(Double, Double)] {
      try String(contentsOfFile: m + ".log.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
        guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
          o["event"] as? String == "epoch"
        else { return nil }
        return (try #require(o["trainLoss"] as? Double), try #require(o["validationLoss"] as? Double))
      }
    }
    let (ca, cb) = (try curve(one), try curve(many))
    #expect(ca.count == 3 && cb.count == 3)
    for (x, y) in zip(ca, cb) {
      #expect(abs(x.0 - y.0) <= 1e-5 * abs(x.0) && abs(x.1 - y.1) <= 1e-5 * abs(x.1), "\(x) vs \(y)")
    }
    #expect(ca.first!.0 > ca.last!.0, "training lowers the loss: \(ca)")
    #expect(b.stderr.components(separatedBy: "gvae: finished 3 epochs").count == 2, "\(b.stderr)")
    // A two-rank checkpoint resumes in one process.
    let r = try gvae(args(many, epochs: 4) + ["--resume"])
    #expect(r.status == 0 && r.stderr.contains("resumed at epoch 4"), "\(r.stderr)")
  }

  /// The DCGAN trains data-parallel: each rank its rows of each batch with synchronised batch
  /// norm in both networks; 2 and 3 ranks (80 images in batches of 10), the same losses as one
  /// process, the same weights, one writer.
  @Test(arguments: [2, 3]) func ganTrainsDataParallel(ranks: Int) throws {
    let dir = try tinyMNIST()
    func args(_ output: String, epochs: Int = 3, batch: Int = 10) -> [String] {
      [
        "image", "gan", "train", "--data", dir.path, "--output", output, "--epochs", String(epochs),
        "--batch-size", String(batch), "--latent", "8", "--g-channels", "8,4", "--d-channels", "4,8", "--seed", "2",
        "--grid", "4",
      ]
    }
    let one = dir.appendingPathComponent("one.safetensors").path
    let many = dir.appendingPathComponent("many.safetensors").path
    let a = try gvae(args(one))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try mpirun(ranks, args(many))
    #expect(b.status == 0, "\(b.stderr)")
    func curve(_ m: String) throws -> [[Double]] {
      try String(contentsOfFile: m + ".log.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
        guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
          o["event"] as? String == "epoch"
        else { return nil }
        return try ["discriminatorLoss", "generatorLoss", "realScore", "fakeScore"].map { try #require(o[$0] as? Double) }
      }
    }
    let (ca, cb) = (try curve(one), try curve(many))
    #expect(ca.count == 3 && cb.count == 3)
    for (x, y) in zip(ca, cb) {
      for (u, v) in zip(x, y) { #expect(abs(u - v) <= 1e-4 * abs(u), "\(x) vs \(y)") }
    }
    #expect(b.stderr.components(separatedBy: "gvae: finished 3 epochs").count == 2, "\(b.stderr)")
    // Samples of the two models agree (running statistics included) to float rounding.
    let (sa, sb) = (one + ".npy", many + ".npy")
    #expect(try gvae(["image", "gan", "sample", "--model", one, "-n", "6", "--output", sa]).status == 0)
    #expect(try gvae(["image", "gan", "sample", "--model", many, "-n", "6", "--output", sb]).status == 0)
    let (pa, pb) = (try Data(contentsOf: URL(fileURLWithPath: sa)), try Data(contentsOf: URL(fileURLWithPath: sb)))
    #expect(pa.count == pb.count && pa.count > 6 * 64 * 4)
    let fa = pa.suffix(6 * 64 * 4).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    let fb = pb.suffix(6 * 64 * 4).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    #expect(zip(fa, fb).map { abs($0 - $1) }.max()! < 1e-3)
    // A two-rank checkpoint resumes in one process; a batch that leaves a rank empty is refused.
    let r = try gvae(args(many, epochs: 4) + ["--resume"])
    #expect(r.status == 0 && r.stderr.contains("resumed at epoch 4"), "\(r.stderr)")
    let small = try mpirun(ranks, args(dir.appendingPathComponent("small.safetensors").path, batch: 79))
    #expect(small.status != 0 && small.stderr.contains("leaves a rank of \(ranks) without any"), "\(small.stderr)")
  }

  /// The `keys` of every epoch line of MODEL.log.jsonl (nil where a key is absent).
  func epochLog(_ model: String, _ keys: [String]) throws -> [[Double?]] {
    try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
      guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
        o["event"] as? String == "epoch"
      else { return nil }
      return keys.map { o[$0] as? Double }
    }
  }

  /// Every number of `b` within `relative` of `a`'s (and both present or both absent).
  func expectClose(
    _ a: [[Double?]], _ b: [[Double?]], relative: Double, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(a.count == b.count, "\(a.count) vs \(b.count) epochs", sourceLocation: sourceLocation)
    for (x, y) in zip(a, b) {
      for (u, v) in zip(x, y) {
        #expect((u == nil) == (v == nil), "\(x) vs \(y)", sourceLocation: sourceLocation)
        if let u, let v {
          #expect(abs(u - v) <= relative * max(abs(u), 1e-3), "\(x) vs \(y)", sourceLocation: sourceLocation)
        }
      }
    }
  }

  /// The semi-supervised VAE trains data-parallel: each rank its rows of the labelled and the
  /// unlabelled batch with the noise one process draws for them. M2 on 2 ranks, M1+M2 on 3
  /// (batches of 20 unlabelled and 8 labelled images split unevenly); the same curve as one
  /// process, one writer, and a 3-epoch run on N ranks resumed in one process ends where one
  /// uninterrupted process does.
  @Test(arguments: [(2, false), (3, true)]) func ssvaeTrainsDataParallel(ranks: Int, stacked: Bool) throws {
    let dir = try tinyLabelledMNIST()
    var m1: [String] = []
    if stacked {
      let vae = dir.appendingPathComponent("vae.safetensors").path
      let v = try gvae([
        "image", "vae", "train", "--data", dir.path, "--output", vae, "--epochs", "1", "--batch-size", "20",
        "--validation-count", "10", "--preset", "2d",
      ])
      #expect(v.status == 0, "\(v.stderr)")
      m1 = ["--m1", vae]
    }
    func args(_ output: String, epochs: Int) -> [String] {
      [
        "image", "ssvae", "train", "--data", dir.path, "--output", output, "--epochs", String(epochs), "--labels", "8",
        "--batch-size", "20", "--labelled-batch-size", "8", "--validation-count", "12", "--hidden", "16", "--latent",
        "4", "--lr", "3e-3", "--seed", "1",
      ] + m1
    }
    let one = dir.appendingPathComponent("one.safetensors").path
    let many = dir.appendingPathComponent("many.safetensors").path
    let a = try gvae(args(one, epochs: 4))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try mpirun(ranks, args(many, epochs: 3))
    #expect(b.status == 0, "\(b.stderr)")
    #expect(b.stderr.components(separatedBy: "gvae: finished 3 epochs").count == 2, "\(b.stderr)")
    let keys = ["trainLoss", "labelledBound", "unlabelledBound", "crossEntropy", "validationError"]
    let (ca, cb) = (try epochLog(one, keys), try epochLog(many, keys))
    #expect(ca.count == 4 && cb.count == 3)
    expectClose(Array(ca.prefix(3)), cb, relative: 1e-5)
    #expect(ca[0][0]! > ca[3][0]!, "training lowers the loss: \(ca)")
    // The N-rank checkpoint resumes in one process, on the uninterrupted curve.
    let r = try gvae(args(many, epochs: 4) + ["--resume"])
    #expect(r.status == 0 && r.stderr.contains("resumed at epoch 4, batch 0, step 15"), "\(r.stderr)")
    expectClose(ca, try epochLog(many, keys), relative: 1e-5)
  }

  /// The image classifier trains data-parallel: every rank draws the whole batch's shifts
  /// and dropout mask and runs its rows. 71 images in batches of 10 leave a last batch of
  /// one image, so some ranks have no rows in it; 2 and 3 ranks see one process's curve, one
  /// writer, and a 3-epoch checkpoint written by N ranks resumes in one process on the
  /// uninterrupted 4-epoch curve.
  @Test(arguments: [2, 3]) func classifierTrainsDataParallel(ranks: Int) throws {
    let dir = try labelledTinyMNIST()
    func args(_ output: String, epochs: Int) -> [String] {
      [
        "image", "classifier", "train", "--data", dir.path, "--output", output, "--epochs", String(epochs), "--channels",
        "4,8", "--hidden", "8", "--batch-size", "10", "--limit", "71", "--shift", "2", "--dropout", "0.3", "--lr", "0.01",
        "--seed", "2",
      ]
    }
    let one = dir.appendingPathComponent("one.safetensors").path
    let many = dir.appendingPathComponent("many.safetensors").path
    let a = try oneProcess(args(one, epochs: 4))
    #expect(a.status == 0, "\(a.stderr)")
    let b = try mpirun(ranks, args(many, epochs: 3))
    #expect(b.status == 0, "\(b.stderr)")
    #expect(b.stderr.components(separatedBy: "gvae: finished 3 epochs").count == 2, "\(b.stderr)")
    let keys = ["trainLoss", "trainAccuracy", "testAccuracy"]
    let (ca, cb) = (try epochLog(one, keys), try epochLog(many, keys))
    #expect(ca.count == 4 && cb.count == 3)
    expectClose(Array(ca.prefix(3)), cb, relative: 1e-5)
    #expect(ca[0][0]! > ca[3][0]!, "training lowers the loss: \(ca)")
    // The N-rank checkpoint resumes in one process, on the uninterrupted curve.
    let r = try oneProcess(args(many, epochs: 4) + ["--resume"])
    #expect(r.status == 0 && r.stderr.contains("resumed at epoch 4, batch 0, step 24"), "\(r.stderr)")
    expectClose(ca, try epochLog(many, keys), relative: 1e-5)
    // The same weights: both classifiers score the test images alike.
    let ea = try gvae(["image", "classifier", "evaluate", "--model", one, "--data", dir.path, "--format", "json"])
    let eb = try gvae(["image", "classifier", "evaluate", "--model", many, "--data", dir.path, "--format", "json"])
    #expect(ea.status == 0 && ea.stdout == eb.stdout, "\(ea.stdout) vs \(eb.stdout)")
  }

  /// CycleGAN trains data-parallel: each rank its pairs of every batch, the fakes gathered so
  /// every rank's pools (6 images, so swaps happen) take the whole batch with one process's
  /// draws. Epochs of 17 pairs in batches of 4 end with a batch of one pair; the same losses
  /// and held-out cycle errors as one process at 2 and 3 ranks; an N-rank checkpoint (pools
  /// included) resumes in one process on the uninterrupted curve; a batch smaller than the
  /// number of ranks is refused.
  @Test(arguments: [2, 3]) func cycleGANTrainsDataParallel(ranks: Int) throws {
    let dir = try cycleData()
    let a = dir.appendingPathComponent("a.csv").path
    let b = dir.appendingPathComponent("b.npy").path
    func args(_ output: String, epochs: Int, batch: Int = 4) -> [String] {
      [
        "image", "cyclegan", "train", "--data-a", a, "--data-b", b, "--output", output, "--epochs", String(epochs),
        "--size", "8", "--filters", "4", "--downsamplings", "1", "--residual-blocks", "1", "--discriminator-filters",
        "4", "--discriminator-layers", "1", "--batch-size", String(batch), "--epoch-size", "17", "--pool-size", "6",
        "--seed", "1",
      ]
    }
    let one = dir.appendingPathComponent("one.safetensors").path
    let many = dir.appendingPathComponent("many.safetensors").path
    let x = try gvae(args(one, epochs: 3))
    #expect(x.status == 0, "\(x.stderr)")
    let y = try mpirun(ranks, args(many, epochs: 2))
    #expect(y.status == 0, "\(y.stderr)")
    #expect(y.stderr.components(separatedBy: "gvae: finished 2 epochs").count == 2, "\(y.stderr)")
    let keys = [
      "generatorLoss", "adversarialAB", "adversarialBA", "cycleA", "cycleB", "identity", "discriminatorA",
      "discriminatorB", "heldOutCycleA", "heldOutCycleB",
    ]
    let (ca, cb) = (try epochLog(one, keys), try epochLog(many, keys))
    #expect(ca.count == 3 && cb.count == 2)
    expectClose(Array(ca.prefix(2)), cb, relative: 1e-4)
    let r = try gvae(args(many, epochs: 3) + ["--resume"])
    #expect(r.status == 0 && r.stderr.contains("resumed at epoch 3, batch 0, step 10"), "\(r.stderr)")
    expectClose(ca, try epochLog(many, keys), relative: 1e-4)
    let small = try mpirun(ranks, args(dir.appendingPathComponent("small.safetensors").path, epochs: 1, batch: ranks - 1))
    #expect(
      small.status != 0 && small.stderr.contains("a batch of \(ranks - 1) cannot be split over \(ranks) ranks"),
      "\(small.stderr)")
    #expect(!small.stderr.contains("Fatal error"))
  }

  /// `mpirun -np N gvae encode` prints what one process prints, byte for byte, bad lines
  /// (in place, JSON) and seeded posterior samples included.
  @Test(arguments: [2, 3]) func shardedEncodeIsOneProcessOutput(ranks: Int) throws {
    let model = try tinyModelPath.get()
    var lines: [String] = []
    for i in 0..<700 {
      lines.append(["x + 1", "sin(x) * 2", "x * x"][i % 3])
      if i == 300 || i == 610 { lines.append("x +") }
    }
    let file = try temporaryFile(lines.joined(separator: "\n") + "\n", name: "ddp-encode-\(ranks).txt")
    for mode in [[], ["--stochastic", "--seed", "5"], ["--format", "json"], ["--format", "json", "--stochastic"]] {
      let args = ["encode", "--model", model] + mode
      let one = try oneProcess(args, stdin: try String(contentsOf: file, encoding: .utf8))
      let many = try mpirun(ranks, args, stdin: file)
      #expect(one.stdout == many.stdout, "\(mode)")
      #expect(!one.stdout.isEmpty)
      #expect((one.status == 0) == (many.status == 0))
    }
  }

  /// `mpirun -np N gvae sample` prints what one process prints: each decoding's noise comes
  /// from its own row's generator and the ranks split the draws by whole decoding chunks.
  @Test(arguments: [2, 3]) func shardedSampleIsOneProcessOutput(ranks: Int) throws {
    let model = try tinyModelPath.get()
    for mode in [["-n", "1200", "--seed", "3"], ["-n", "1100", "--seed", "4", "--no-length-budget"], ["-n", "700", "--greedy"], ["-n", "600", "--format", "json"]] {
      let args = ["sample", "--model", model] + mode
      let one = try oneProcess(args)
      let many = try mpirun(ranks, args)
      #expect(one.status == 0 && many.status == 0, "\(many.stderr)")
      #expect(one.stdout == many.stdout, "\(mode)")
      #expect(one.stdout.split(separator: "\n").count == Int(mode[1]))
    }
  }

  /// `mpirun -np N gvae evaluate`: the same report (but its timing) and prior decodings.
  @Test(arguments: [2, 3]) func shardedEvaluateIsOneProcessReport(ranks: Int) throws {
    let model = try tinyModelPath.get()
    let data = try temporaryFile(
      (0..<300).map { ["x + \($0 % 3 + 1)", "sin(x) * \($0 % 2 + 1)"][$0 % 2] }.joined(separator: "\n") + "\n",
      name: "ddp-evaluate-\(ranks).txt")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    func args(_ prior: URL) -> [String] {
      [
        "evaluate", "--model", model, "--data", data.path, "--test-count", "150", "--encodings", "3",
        "--decodings", "4", "--prior-samples", "700", "--prior-decodings", "3", "--format", "json",
        "--prior-output", prior.path, "--reconstruction", "both",
      ]
    }
    let (p1, p2) = (dir.appendingPathComponent("one.txt"), dir.appendingPathComponent("many.txt"))
    let one = try oneProcess(args(p1))
    let many = try mpirun(ranks, args(p2))
    #expect(one.status == 0 && many.status == 0, "\(many.stderr)")
    func strip(_ s: String) -> String { s.replacing(/"seconds":[0-9.e+-]+,?/, with: "") }
    #expect(strip(one.stdout) == strip(many.stdout))
    #expect(one.stdout.contains("\"testCount\":150"))
    #expect(one.stdout.contains("\"reconstructionExpected\":"))
    #expect(try Data(contentsOf: p1) == Data(contentsOf: p2))
  }

  /// `mpirun -np N gvae optimize`: the same proposals, GP scores and best strings as one
  /// process (the data scored and encoded in shares, candidate blocks and restarts
  /// round-robin, decodings and picks by point), in-process and external scorers alike.
  @Test(arguments: [2, 3]) func shardedOptimizeIsOneProcessOutput(ranks: Int) throws {
    let model = try tinyModelPath.get()
    let forms = ["x", "x + 1", "sin(x) * 2", "x * x + 3", "exp(x) / 2", "x / 3", "sin(x + 1)"]
    let data = try temporaryFile(
      (0..<600).map { forms[$0 % forms.count] + ($0 % 5 == 0 ? " + x" : "") }.joined(separator: "\n") + "\n",
      name: "ddp-bo-\(ranks).txt")
    for objective in ["expression", "while IFS= read -r l; do echo ${#l}; done"] {
      let args = [
        "optimize", "--model", model, "--data", data.path, "--objective", objective, "--iterations", "2",
        "--batch", "4", "--decodings", "5", "--inducing", "10", "--epochs", "1", "--gp-batch", "100",
        "--candidates", "2500", "--restarts", "3", "--test-fraction", "0.1", "--seed", "4",
      ]
      let one = try oneProcess(args)
      let many = try mpirun(ranks, args)
      #expect(one.status == 0 && many.status == 0, "\(many.stderr)")
      func strip(_ s: String) -> String { s.replacing(/"seconds":[0-9.e+-]+/, with: "") }
      #expect(strip(one.stdout) == strip(many.stdout), "\(objective)")
      #expect(one.stdout.components(separatedBy: "\"index\":").count == 9, "\(one.stdout)")
    }
  }

  @Test func commandsThatRunAsOneProcessRefuse() throws {
    let r = try mpirun(2, ["parse", "--grammar", "equation", "x + 1"])
    #expect(r.status != 0)
    #expect(r.stderr.contains("runs as one process"), "\(r.stderr)")
  }
}

