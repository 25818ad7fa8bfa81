// End to end on the built binary: `gvae image vae …` on a tiny idx data set the test writes.
import Foundation
import Testing

/// An idx file of unsigned bytes with `shape`.
func idxBytes(shape: [Int], _ bytes: [UInt8]) -> Data {
  var out: [UInt8] = [0, 0, 8, UInt8(shape.count)]
  for d in shape { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
  return Data(out + bytes)
}

/// `n` 8×8 images, four stripe patterns.
func stripes(_ n: Int) -> [UInt8] {
  var px: [UInt8] = []
  for k in 0..<n {
    for y in 0..<8 {
      for x in 0..<8 {
        let on = [x % 3 == 0, y % 3 == 0, (x + y) % 4 == 0, x < 4][k % 4]
        px.append(on ? 230 : 10)
      }
    }
  }
  return px
}

/// A directory in the MNIST layout: 80 training and 20 test images of 8×8.
func tinyMNIST() throws -> URL {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gvae-image-tool-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  try idxBytes(shape: [80, 8, 8], stripes(80)).write(to: dir.appendingPathComponent("train-images-idx3-ubyte"))
  try idxBytes(shape: [80], (0..<80).map { UInt8($0 % 4) }).write(to: dir.appendingPathComponent("train-labels-idx1-ubyte"))
  try idxBytes(shape: [20, 8, 8], stripes(20)).write(to: dir.appendingPathComponent("t10k-images-idx3-ubyte"))
  return dir
}

@Suite(.serialized) struct ImageToolTests {
  @Test func trainEvaluateSampleReconstruct() throws {
    let dir = try tinyMNIST()
    let model = dir.appendingPathComponent("m.safetensors").path
    let train = try gvae([
      "image", "vae", "train", "--data", dir.path, "--output", model, "--epochs", "2", "--batch-size", "10",
      "--validation-count", "10", "--seed", "1",
    ])
    #expect(train.status == 0, "\(train.stderr)")
    #expect(train.stderr.contains("preset iwae-1") && train.stderr.contains("70 training / 10 validation images 8×8"))
    let log = try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8)
    #expect(log.components(separatedBy: "\"event\":\"epoch\"").count == 3)
    #expect(FileManager.default.fileExists(atPath: model + ".loss.svg"))
    #expect(FileManager.default.fileExists(atPath: model + ".checkpoint"))

    // --resume continues at epoch 3 of 3.
    let more = try gvae([
      "image", "vae", "train", "--data", dir.path, "--output", model, "--epochs", "3", "--batch-size", "10",
      "--validation-count", "10", "--seed", "1", "--resume",
    ])
    #expect(more.status == 0, "\(more.stderr)")
    #expect(more.stderr.contains("resumed at epoch 3, batch 0, step 14"), "\(more.stderr)")

    let eval = try gvae([
      "image", "vae", "evaluate", "--model", model, "--data", dir.path, "--importance-samples", "50", "--format", "json",
    ])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.stderr.contains("20 test images") && eval.stderr.contains("binarised once with seed 12345"))
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Double], "\(eval.stdout)")
    #expect(Set(json.keys) == ["images", "elbo", "log_likelihood"])
    #expect(json["images"] == 20)
    let elbo = try #require(json["elbo"])
    let ll = try #require(json["log_likelihood"])
    #expect(elbo < 0 && ll < 0 && ll >= elbo && elbo > -64 * 2, "\(json)")
    // A part of the test set: --skip and --limit; fewer rows per pass give the same figures.
    let part = try gvae([
      "image", "vae", "evaluate", "--model", model, "--data", dir.path, "--importance-samples", "50", "--skip", "15",
      "--limit", "10", "--format", "json",
    ])
    #expect(part.status == 0 && part.stderr.contains("5 test images"), "\(part.stderr)")
    let first = try gvae([
      "image", "vae", "evaluate", "--model", model, "--data", dir.path, "--importance-samples", "50", "--limit", "4",
      "--format", "json",
    ])
    let narrow = try gvae([
      "image", "vae", "evaluate", "--model", model, "--data", dir.path, "--importance-samples", "50", "--limit", "4",
      "--rows-per-pass", "7", "--format", "json",
    ])
    #expect(first.status == 0 && first.stdout == narrow.stdout, "\(first.stdout) \(narrow.stdout)")
    expectCleanError(
      try gvae(["image", "vae", "evaluate", "--model", model, "--data", dir.path, "--skip", "20"]),
      contains: "--skip 20: the test set has only 20 images")

    let npy = dir.appendingPathComponent("s.npy").path
    let s = try gvae(["image", "vae", "sample", "--model", model, "-n", "6", "--output", npy, "--seed", "2"])
    #expect(s.status == 0, "\(s.stderr)")
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: npy)))
    #expect(Array(bytes.prefix(6)) == [0x93] + Array("NUMPY".utf8))
    let headerEnd = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
    #expect(String(decoding: bytes[10..<headerEnd], as: UTF8.self).contains("'shape': (6, 8, 8)"))
    #expect(bytes.count == headerEnd + 6 * 64 * 4)
    let png = dir.appendingPathComponent("s.png").path
    #expect(try gvae(["image", "vae", "sample", "--model", model, "-n", "6", "--output", png]).status == 0)
    #expect(Array(try Data(contentsOf: URL(fileURLWithPath: png)).prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
    let r = try gvae([
      "image", "vae", "reconstruct", "--model", model, "--data", dir.path, "-n", "5",
      "--output", dir.appendingPathComponent("r.png").path,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    expectCleanError(
      try gvae(["image", "vae", "sample", "--model", model, "--output", dir.appendingPathComponent("s.jpg").path]),
      contains: "give a .png (grid) or .npy")
    expectCleanError(
      try gvae(["image", "vae", "manifold", "--model", model, "--output", png]),
      contains: "has 50 latent dimensions; the manifold needs 2")

    // Data of another size than the model's.
    let other = try tinyMNIST()
    try idxBytes(shape: [3, 4, 4], [UInt8](repeating: 1, count: 48)).write(to: other.appendingPathComponent("t10k-images-idx3-ubyte"))
    try idxBytes(shape: [3, 4, 4], [UInt8](repeating: 1, count: 48)).write(to: other.appendingPathComponent("train-images-idx3-ubyte"))
    try FileManager.default.removeItem(at: other.appendingPathComponent("train-labels-idx1-ubyte"))
    expectCleanError(
      try gvae(["image", "vae", "evaluate", "--model", model, "--data", other.path]),
      contains: "the images are 4×4, the model is for 8×8")
  }

  @Test func twoDimensionalManifold() throws {
    let dir = try tinyMNIST()
    let model = dir.appendingPathComponent("m2.safetensors").path
    let t = try gvae([
      "image", "vae", "train", "--data", dir.path, "--output", model, "--preset", "2d", "--epochs", "1",
      "--validation-count", "10", "--importance-samples", "3",
    ])
    #expect(t.status == 0, "\(t.stderr)")
    #expect(t.stderr.contains("IWAE bound, k = 3"))
    let out = dir.appendingPathComponent("manifold.png").path
    let m = try gvae(["image", "vae", "manifold", "--model", model, "--output", out, "--steps", "5"])
    #expect(m.status == 0, "\(m.stderr)")
    // 5×5 tiles of 8×8 without borders: a 40×40 PNG.
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
    #expect(Array(bytes[16..<24]) == [0, 0, 0, 40, 0, 0, 0, 40])
  }

  @Test func ctrlCSavesACheckpoint() throws {
    let dir = try tinyMNIST()
    let model = dir.appendingPathComponent("c.safetensors").path
    let p = Process()
    p.executableURL = try #require(gvaeBinary)
    p.arguments = ["image", "vae", "train", "--data", dir.path, "--output", model, "--epochs", "100000", "--validation-count", "10"]
    let err = dir.appendingPathComponent("stderr")
    FileManager.default.createFile(atPath: err.path, contents: nil)
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
  }

  @Test func badDataAndModelFilesAreClearErrors() throws {
    let dir = try tinyMNIST()
    let out = dir.appendingPathComponent("x.safetensors").path
    // A truncated idx file.
    let cut = try Data(contentsOf: dir.appendingPathComponent("train-images-idx3-ubyte")).prefix(100)
    try cut.write(to: dir.appendingPathComponent("train-images-idx3-ubyte"))
    expectCleanError(
      try gvae(["image", "vae", "train", "--data", dir.path, "--output", out]),
      contains: "train-images-idx3-ubyte: truncated file: the header promises 5136 bytes, the file has 100")
    // Wrong magic.
    try Data([0x50, 0x4B, 3, 4] + [UInt8](repeating: 0, count: 20)).write(to: dir.appendingPathComponent("train-images-idx3-ubyte"))
    expectCleanError(
      try gvae(["image", "vae", "train", "--data", dir.path, "--output", out]), contains: "bad magic number")
    // A directory of nothing known.
    let empty = dir.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    expectCleanError(
      try gvae(["image", "vae", "train", "--data", empty.path, "--output", out]), contains: "unknown data layout")
    // A Grammar VAE model file (its metadata; the weights do not matter).
    let header = #"{"__metadata__":{"gvae.configuration":"{}","gvae.format":"2","gvae.grammar":"S -> 'x'","gvae.grammar_name":"equation"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
    var file = Data()
    var length = UInt64(header.utf8.count).littleEndian
    file.append(Data(bytes: &length, count: 8))
    file.append(Data(header.utf8))
    file.append(Data([0, 0, 0, 0]))
    let grammarModel = dir.appendingPathComponent("g.safetensors")
    try file.write(to: grammarModel)
    expectCleanError(
      try gvae(["image", "vae", "evaluate", "--model", grammarModel.path, "--data", dir.path]),
      contains: "is a Grammar VAE model file (grammar equation), not an image VAE")
    expectCleanError(
      try gvae(["image", "vae", "sample", "--model", dir.appendingPathComponent("none.safetensors").path, "--output", out + ".png"]),
      contains: "cannot read model file")
  }
}
