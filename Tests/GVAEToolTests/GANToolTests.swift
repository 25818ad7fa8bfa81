// End to end on the built binary: `gvae image gan|classifier|score` on tiny data the test writes.
import Foundation
import Testing

/// A .npy float32 array of `shape`.
func npyFloat32(shape: [Int], _ values: [Float]) -> Data {
  let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
  var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
  while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
  header += "\n"
  var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 255), UInt8(header.utf8.count >> 8)]
  out += Array(header.utf8)
  for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
  return Data(out)
}

/// The shape in a .npy file's header.
func npyShape(_ path: String) throws -> String {
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  let end = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
  let h = String(decoding: bytes[10..<end], as: UTF8.self)
  guard let r = h.range(of: "'shape': (") else { return "" }
  return String(h[r.upperBound...].prefix { $0 != ")" })
}

/// A failed command: non-zero exit, the message, no crash (ArgumentParser may add usage lines).
func expectFailure(_ r: ToolResult, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(r.status != 0, sourceLocation: sourceLocation)
  #expect(r.stderr.contains(text), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
  #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
}

/// tinyMNIST with test labels too, so the classifier can be evaluated.
func labelledTinyMNIST() throws -> URL {
  let dir = try tinyMNIST()
  try idxBytes(shape: [20], (0..<20).map { UInt8($0 % 4) }).write(to: dir.appendingPathComponent("t10k-labels-idx1-ubyte"))
  return dir
}

@Suite(.serialized) struct GANToolTests {
  static let ganOptions = ["--g-channels", "8,4", "--d-channels", "4,8", "--latent", "4", "--grid", "4", "--batch-size", "8"]

  @Test func trainSampleScore() throws {
    let dir = try labelledTinyMNIST()
    // The GAN trains on a .npy file of the stripes (all 40 images).
    let npy = dir.appendingPathComponent("stripes.npy")
    try npyFloat32(shape: [40, 8, 8], stripes(40).map { Float($0) / 255 }).write(to: npy)
    let gan = dir.appendingPathComponent("g.safetensors").path
    let t = try gvae(["image", "gan", "train", "--data", npy.path, "--all-images", "--output", gan, "--epochs", "1", "--seed", "2"] + Self.ganOptions)
    #expect(t.status == 0, "\(t.stderr)")
    #expect(t.stderr.contains("40 images 8×8 (every image of stripes.npy)"), "\(t.stderr)")
    #expect(t.stderr.contains("epoch 1: loss D "))
    for f in [gan, gan + ".checkpoint", gan + ".log.jsonl", gan + ".samples/epoch-001.png"] {
      #expect(FileManager.default.fileExists(atPath: f), "\(f)")
    }
    let more = try gvae(
      ["image", "gan", "train", "--data", npy.path, "--all-images", "--output", gan, "--epochs", "2", "--seed", "2", "--resume"]
        + Self.ganOptions)
    #expect(more.status == 0, "\(more.stderr)")
    #expect(more.stderr.contains("resumed at epoch 2, batch 0, step 5"), "\(more.stderr)")
    #expect(FileManager.default.fileExists(atPath: gan + ".samples/epoch-002.png"))

    let samples = dir.appendingPathComponent("s.npy").path
    let s = try gvae(["image", "gan", "sample", "--model", gan, "-n", "30", "--output", samples, "--seed", "1"])
    #expect(s.status == 0, "\(s.stderr)")
    #expect(try npyShape(samples) == "30, 8, 8")
    let png = dir.appendingPathComponent("s.png").path
    #expect(try gvae(["image", "gan", "sample", "--model", gan, "-n", "9", "--output", png]).status == 0)
    #expect(Array(try Data(contentsOf: URL(fileURLWithPath: png)).prefix(4)) == [0x89, 0x50, 0x4E, 0x47])

    let cls = dir.appendingPathComponent("c.safetensors").path
    let c = try gvae([
      "image", "classifier", "train", "--data", dir.path, "--output", cls, "--epochs", "3", "--channels", "4,8",
      "--hidden", "8", "--batch-size", "10", "--shift", "0", "--lr", "0.01",
    ])
    #expect(c.status == 0, "\(c.stderr)")
    #expect(c.stderr.contains("4 classes") && c.stderr.contains("80 training / 20 test images 8×8"), "\(c.stderr)")
    let e = try gvae(["image", "classifier", "evaluate", "--model", cls, "--data", dir.path, "--format", "json"])
    #expect(e.status == 0, "\(e.stderr)")
    let ej = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double], "\(e.stdout)")
    #expect(ej["images"] == 20 && (0...1).contains(ej["accuracy"] ?? -1))

    let score = try gvae(["image", "score", "--samples", samples, "--classifier", cls, "--data", dir.path, "--format", "json"])
    #expect(score.status == 0, "\(score.stderr)")
    let j = try #require(try JSONSerialization.jsonObject(with: Data(score.stdout.utf8)) as? [String: Any], "\(score.stdout)")
    #expect(j["images"] as? Int == 30 && j["referenceImages"] as? Int == 20)
    let fd = try #require(j["frechetDistance"] as? Double)
    let inception = try #require(j["inceptionScore"] as? Double)
    let histogram = try #require(j["labelHistogram"] as? [Int])
    #expect(fd >= 0 && inception >= 1 - 1e-9 && inception <= 4 + 1e-9, "\(j)")
    #expect(histogram.count == 4 && histogram.reduce(0, +) == 30)
    // Real images against the test set: the floor; text output names every measure.
    let floor = try gvae(["image", "score", "--samples", dir.path, "--classifier", cls, "--data", dir.path])
    #expect(floor.status == 0, "\(floor.stderr)")
    for key in ["images 80", "frechet_distance", "inception_score", "labels "] { #expect(floor.stdout.contains(key), "\(floor.stdout)") }
  }

  @Test func badInputIsAClearError() throws {
    let dir = try labelledTinyMNIST()
    let cls = dir.appendingPathComponent("c.safetensors").path
    #expect(
      try gvae([
        "image", "classifier", "train", "--data", dir.path, "--output", cls, "--epochs", "1", "--channels", "4", "--hidden", "4",
      ]).status == 0)
    let gan = dir.appendingPathComponent("g.safetensors").path
    #expect(try gvae(["image", "gan", "train", "--data", dir.path, "--output", gan, "--epochs", "1"] + Self.ganOptions).status == 0)
    let out = dir.appendingPathComponent("x.npy").path

    // Wrong kinds of model file, both ways, and a missing one.
    expectCleanError(
      try gvae(["image", "gan", "sample", "--model", cls, "--output", out]),
      contains: "is an image classifier model file, not an image GAN")
    expectCleanError(
      try gvae(["image", "score", "--samples", out, "--classifier", gan]),
      contains: "is an image GAN model file, not an image classifier")
    expectCleanError(
      try gvae(["image", "gan", "sample", "--model", dir.appendingPathComponent("none").path, "--output", out]),
      contains: "cannot read model file")
    expectCleanError(
      try gvae(["image", "gan", "sample", "--model", gan, "--output", dir.appendingPathComponent("x.jpg").path]),
      contains: "give a .png (grid) or .npy")
    // Samples of another size, samples missing, samples out of range.
    let small = dir.appendingPathComponent("small.npy")
    try npyFloat32(shape: [3, 4, 4], [Float](repeating: 0.5, count: 48)).write(to: small)
    expectCleanError(
      try gvae(["image", "score", "--samples", small.path, "--classifier", cls]),
      contains: "the images are 4×4, the classifier is for 8×8")
    expectCleanError(
      try gvae(["image", "score", "--samples", dir.appendingPathComponent("missing.npy").path, "--classifier", cls]),
      contains: "missing.npy")
    let bright = dir.appendingPathComponent("bright.npy")
    try npyFloat32(shape: [2, 8, 8], [Float](repeating: 2, count: 128)).write(to: bright)
    expectCleanError(
      try gvae(["image", "score", "--samples", bright.path, "--classifier", cls]), contains: "value 2.0 is outside [0, 1]")
    // A GAN checkpoint of other sizes cannot be resumed; a network that does not fit the images.
    expectCleanError(
      try gvae(["image", "gan", "train", "--data", dir.path, "--output", gan, "--epochs", "2", "--resume", "--latent", "5"]),
      contains: "holds a GAN with a different configuration")
    expectCleanError(
      try gvae(["image", "gan", "train", "--data", dir.path, "--output", gan, "--g-channels", "8,8,8,8"]),
      contains: "4 stride-2 generator layers need height and width divisible by 16")
    // Option values.
    expectFailure(try gvae(["image", "gan", "train", "--data", dir.path, "--output", gan, "--size", "0x9"]), contains: "--size")
    expectFailure(try gvae(["image", "gan", "train", "--data", dir.path, "--output", gan, "--lr", "-1"]), contains: "--lr")
    expectFailure(
      try gvae(["image", "classifier", "train", "--data", dir.path, "--output", cls, "--channels", "4,x"]), contains: "--channels")
    expectFailure(try gvae(["image", "gan", "sample", "--model", gan, "--output", out, "-n", "0"]), contains: "-n")
    // No labels to learn from.
    let npy = dir.appendingPathComponent("nolabels.npy")
    try npyFloat32(shape: [20, 8, 8], [Float](repeating: 0.1, count: 1280)).write(to: npy)
    expectCleanError(
      try gvae(["image", "classifier", "train", "--data", npy.path, "--output", cls]), contains: "have no labels")
  }
}

/// `gvae image classifier train`'s checkpoints: --resume on the uninterrupted curve, Ctrl-C,
/// the NaN guard, and checkpoints that do not fit refused by name.
@Suite(.serialized) struct ClassifierToolTests {
  /// 73 labelled 8×8 images in batches of 10 (a short last batch), shifts and dropout on: every
  /// random draw of a step comes from the run's seeded streams. One BLAS thread, so the two runs
  /// round alike.
  func train(_ dir: URL, _ output: String, epochs: Int, _ extra: [String] = []) throws -> ToolResult {
    try gvae(
      [
        "image", "classifier", "train", "--data", dir.path, "--output", output, "--epochs", String(epochs), "--channels",
        "4,8", "--hidden", "8", "--batch-size", "10", "--limit", "73", "--shift", "2", "--dropout", "0.3", "--lr", "0.01",
        "--decay", "0.8", "--seed", "2",
      ] + extra, environment: ["GVAE_BLAS_THREADS": "1"])
  }

  /// Every epoch line of MODEL.log.jsonl: step, loss, accuracies, learning rate.
  func curve(_ model: String) throws -> [[Double]] {
    try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
      guard let o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], o["event"] as? String == "epoch"
      else { return nil }
      return try ["step", "trainLoss", "trainAccuracy", "testAccuracy", "learningRate"].map { try #require(o[$0] as? Double) }
    }
  }

  /// 4 epochs straight against: a time limit after the first batch (a checkpoint mid-epoch 1),
  /// --resume to 2 epochs, --resume to 4. The log's numbers are equal, not close: the resumed
  /// run restores the weights, Adam's moments and step, the epoch's sums and position and the
  /// shift-and-dropout stream exactly (F32 tensors, JSON doubles that round-trip), and replays
  /// the same batches, so every float operation is the one the straight run did.
  @Test func resumeFollowsTheUninterruptedCurve() throws {
    let dir = try labelledTinyMNIST()
    let straight = dir.appendingPathComponent("straight.safetensors").path
    let a = try train(dir, straight, epochs: 4)
    #expect(a.status == 0, "\(a.stderr)")
    let resumed = dir.appendingPathComponent("resumed.safetensors").path
    let b = try train(dir, resumed, epochs: 4, ["--max-minutes", "0.000001"])
    #expect(b.status == 0 && b.stderr.contains("time limit reached; checkpoint saved to \(resumed).checkpoint"), "\(b.stderr)")
    // No epoch finished: the current weights are the model meanwhile.
    #expect(FileManager.default.fileExists(atPath: resumed))
    let c = try train(dir, resumed, epochs: 2, ["--resume"])
    #expect(c.status == 0 && c.stderr.contains("resumed at epoch 1, batch 1, step 1"), "\(c.stderr)")
    let d = try train(dir, resumed, epochs: 4, ["--resume"])
    #expect(d.status == 0 && d.stderr.contains("resumed at epoch 3, batch 0, step 16"), "\(d.stderr)")
    #expect(d.stderr.contains("gvae: finished 4 epochs"), "\(d.stderr)")
    let (x, y) = (try curve(straight), try curve(resumed))
    #expect(x.count == 4 && x.map { $0[0] } == [8, 16, 24, 32], "\(x)")
    #expect(x == y, "straight \(x)\nresumed \(y)")
    #expect(x[0][1] > x[3][1], "training lowers the loss: \(x)")
    // The same weights: the two models score the test images alike, and so does the checkpoint.
    let ea = try gvae(["image", "classifier", "evaluate", "--model", straight, "--data", dir.path, "--format", "json"])
    let eb = try gvae(["image", "classifier", "evaluate", "--model", resumed, "--data", dir.path, "--format", "json"])
    let ec = try gvae(["image", "classifier", "evaluate", "--model", resumed + ".checkpoint", "--data", dir.path, "--format", "json"])
    #expect(ea.status == 0 && ea.stdout == eb.stdout && eb.stdout == ec.stdout, "\(ea.stdout) \(eb.stdout) \(ec.stdout)")
  }

  @Test func ctrlCSavesACheckpointThatResumes() throws {
    let dir = try labelledTinyMNIST()
    let model = dir.appendingPathComponent("c.safetensors").path
    let p = Process()
    p.executableURL = try #require(gvaeBinary)
    p.arguments = [
      "image", "classifier", "train", "--data", dir.path, "--output", model, "--epochs", "1000", "--channels", "4",
      "--hidden", "4", "--batch-size", "10",
    ]
    let err = dir.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    p.standardError = try FileHandle(forWritingTo: err)
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    // The first epoch's checkpoint shows the handler is installed.
    let deadline = Date().addingTimeInterval(60)
    while !FileManager.default.fileExists(atPath: model + ".checkpoint") && Date() < deadline { usleep(20_000) }
    kill(p.processIdentifier, SIGINT)
    let stopBy = Date().addingTimeInterval(60)
    while p.isRunning && Date() < stopBy { usleep(20_000) }
    if p.isRunning {
      kill(p.processIdentifier, SIGKILL)
      Issue.record("SIGINT did not stop training within 60 s")
    }
    p.waitUntilExit()
    let text = try String(contentsOf: err, encoding: .utf8)
    #expect(p.terminationStatus == 0, "\(text)")
    #expect(text.contains("interrupted; checkpoint saved to \(model).checkpoint (continue with --resume)"), "\(text)")
    let more = try gvae(
      [
        "image", "classifier", "train", "--data", dir.path, "--output", model, "--epochs", "1000", "--channels", "4",
        "--hidden", "4", "--batch-size", "10", "--max-minutes", "0.000001", "--resume",
      ])
    #expect(more.status == 0 && more.stderr.contains("gvae: resumed at epoch "), "\(more.stderr)")
  }

  /// A non-finite loss (here from a learning rate of 1e30 on --resume) stops training with a
  /// message and a non-zero exit; the last good checkpoint stays as it was and resumes.
  @Test func nonFiniteLossKeepsTheLastGoodCheckpoint() throws {
    let dir = try labelledTinyMNIST()
    let model = dir.appendingPathComponent("n.safetensors").path
    #expect(try train(dir, model, epochs: 1).status == 0)
    let before = try Data(contentsOf: URL(fileURLWithPath: model + ".checkpoint"))
    let r = try train(dir, model, epochs: 2, ["--resume", "--lr", "1e30"])
    expectFailure(r, contains: "loss became NaN or infinite at epoch 2")
    #expect(r.stderr.contains("The last good checkpoint is \(model).checkpoint"), "\(r.stderr)")
    #expect(try Data(contentsOf: URL(fileURLWithPath: model + ".checkpoint")) == before)
    let log = try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8)
    #expect(log.contains("\"event\":\"error\""), "\(log)")
    let again = try train(dir, model, epochs: 2, ["--resume"])
    #expect(again.status == 0 && again.stderr.contains("resumed at epoch 2, batch 0, step 8"), "\(again.stderr)")
  }

  @Test func checkpointsThatDoNotFitAreClearErrors() throws {
    let dir = try labelledTinyMNIST()
    let model = dir.appendingPathComponent("m.safetensors").path
    let checkpoint = model + ".checkpoint"
    expectCleanError(try train(dir, model, epochs: 2, ["--resume"]), contains: "--resume: no checkpoint at \(checkpoint)")
    #expect(try train(dir, model, epochs: 1).status == 0)
    let good = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
    // Another network, another seed, batch size or shift, fewer images.
    expectCleanError(
      try train(dir, model, epochs: 2, ["--resume", "--hidden", "9"]),
      contains: "\(checkpoint): holds a classifier with a different configuration; start without --resume")
    for other in [["--seed", "3"], ["--batch-size", "11"], ["--shift", "1"]] {
      expectCleanError(
        try train(dir, model, epochs: 2, ["--resume"] + other), contains: "was written with another --seed, --batch-size or --shift")
    }
    expectCleanError(
      try train(dir, model, epochs: 2, ["--resume", "--limit", "60"]),
      contains: "was written for 73 training images, this run has 60")
    // Cut short, garbage, empty.
    try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: checkpoint))
    expectCleanError(try train(dir, model, epochs: 2, ["--resume"]), contains: "\(checkpoint): safetensors: tensor '")
    try Data("not a checkpoint at all".utf8).write(to: URL(fileURLWithPath: checkpoint))
    expectCleanError(try train(dir, model, epochs: 2, ["--resume"]), contains: "\(checkpoint): safetensors:")
    try Data().write(to: URL(fileURLWithPath: checkpoint))
    expectCleanError(try train(dir, model, epochs: 2, ["--resume"]), contains: "\(checkpoint): safetensors:")
    // Another kind's checkpoint in its place.
    let gan = dir.appendingPathComponent("g.safetensors").path
    #expect(try gvae(["image", "gan", "train", "--data", dir.path, "--output", gan, "--epochs", "1"] + GANToolTests.ganOptions).status == 0)
    try FileManager.default.removeItem(atPath: checkpoint)
    try FileManager.default.copyItem(atPath: gan + ".checkpoint", toPath: checkpoint)
    expectCleanError(try train(dir, model, epochs: 2, ["--resume"]), contains: "\(checkpoint): not an image classifier checkpoint")
    // The good one still resumes.
    try good.write(to: URL(fileURLWithPath: checkpoint))
    let r = try train(dir, model, epochs: 2, ["--resume"])
    #expect(r.status == 0 && r.stderr.contains("resumed at epoch 2, batch 0, step 8"), "\(r.stderr)")
    // Option values.
    expectFailure(try train(dir, model, epochs: 2, ["--checkpoint-minutes", "0"]), contains: "--checkpoint-minutes")
  }
}
