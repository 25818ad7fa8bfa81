// End to end on the built binary: `gvae image cyclegan …` on tiny unpaired domains the test writes.
import Foundation
import Testing

/// A digits-format CSV (64 values 0…16 and a label per line) of `n` 8×8 images: vertical
/// bars (A) or horizontal bars (B) at one of four positions, the label.
private func barsCSV(_ n: Int, vertical: Bool) -> Data {
  var lines: [String] = []
  for k in 0..<n {
    let at = k % 4 * 2
    var v: [String] = []
    for y in 0..<8 {
      for x in 0..<8 {
        let p = vertical ? x : y
        v.append(p == at || p == at + 1 ? "16" : String((x * 7 + y * 3 + k) % 3))
      }
    }
    lines.append((v + [String(k % 4)]).joined(separator: ","))
  }
  return Data((lines.joined(separator: "\n") + "\n").utf8)
}

/// A .npy float32 array of `shape` (little-endian, C order).
private func npy(shape: [Int], _ values: [Float]) -> Data {
  var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))), }"
  while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
  header += "\n"
  var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 255), UInt8(header.utf8.count >> 8)]
  out += Array(header.utf8)
  for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
  return Data(out)
}

/// Non-zero exit, the message, no crash (ArgumentParser may add usage lines).
private func expectRejected(_ r: ToolResult, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(r.status != 0, sourceLocation: sourceLocation)
  #expect(r.stderr.contains(text), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
  #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
}

/// A directory with domain A (vertical bars, CSV), B (horizontal bars, CSV) and an unlabelled
/// .npy copy of B; 40 images each, so 36 training and 4 test images.
func cycleData() throws -> URL {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gvae-cyclegan-tool-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  try barsCSV(40, vertical: true).write(to: dir.appendingPathComponent("a.csv"))
  try barsCSV(40, vertical: false).write(to: dir.appendingPathComponent("b.csv"))
  var px: [Float] = []
  for k in 0..<40 {
    for y in 0..<8 { for _ in 0..<8 { px.append(y == k % 4 * 2 ? 1 : 0) } }
  }
  try npy(shape: [40, 8, 8], px).write(to: dir.appendingPathComponent("b.npy"))
  return dir
}

/// The tiny architecture for 8×8 images.
private let tinyOptions = [
  "--size", "8", "--filters", "4", "--downsamplings", "1", "--residual-blocks", "1", "--discriminator-filters", "4",
  "--discriminator-layers", "1", "--batch-size", "4", "--seed", "1",
]

@Suite(.serialized) struct CycleGANToolTests {
  @Test func trainTranslateEvaluate() throws {
    let dir = try cycleData()
    let a = dir.appendingPathComponent("a.csv").path
    let b = dir.appendingPathComponent("b.npy").path
    let model = dir.appendingPathComponent("c.safetensors").path
    let train = try gvae(
      ["image", "cyclegan", "train", "--data-a", a, "--data-b", b, "--output", model, "--epochs", "1"] + tinyOptions)
    #expect(train.status == 0, "\(train.stderr)")
    #expect(train.stderr.contains("CycleGAN 8×8") && train.stderr.contains("A 36 training / 4 held-out images, B 36 / 4"), "\(train.stderr)")
    #expect(train.stderr.contains("36 pairs per epoch, batch 4"))
    #expect(train.stderr.contains("held-out cycle error A 0."), "\(train.stderr)")
    let log = try String(contentsOfFile: model + ".log.jsonl", encoding: .utf8)
    #expect(log.components(separatedBy: "\"event\":\"epoch\"").count == 2)
    #expect(FileManager.default.fileExists(atPath: model + ".checkpoint"))
    // --resume continues at epoch 2 of 2, after 9 steps of 4 pairs.
    let more = try gvae(
      ["image", "cyclegan", "train", "--data-a", a, "--data-b", b, "--output", model, "--epochs", "2", "--resume"] + tinyOptions)
    #expect(more.status == 0, "\(more.stderr)")
    #expect(more.stderr.contains("resumed at epoch 2, batch 0, step 9"), "\(more.stderr)")
    #expect(more.stderr.contains("finished 2 epochs"), "\(more.stderr)")

    // A .png grid of 4 pairs in one row: 8 tiles of 8×8 with 1-pixel borders, 73×10.
    let png = dir.appendingPathComponent("t.png").path
    let t = try gvae(["image", "cyclegan", "translate", "--model", model, "--data", a, "--direction", "a-to-b", "--output", png, "--count", "4"])
    #expect(t.status == 0, "\(t.stderr)")
    let pngBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: png)))
    #expect(Array(pngBytes.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
    #expect(Array(pngBytes[16..<24]) == [0, 0, 0, 73, 0, 0, 0, 10])
    // A .npy of the translations B → A: [3, 8, 8] float32 in [0, 1].
    let out = dir.appendingPathComponent("t.npy").path
    let n = try gvae(["image", "cyclegan", "translate", "--model", model, "--data", b, "--direction", "b-to-a", "--output", out, "--count", "3"])
    #expect(n.status == 0, "\(n.stderr)")
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
    let headerEnd = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
    #expect(String(decoding: bytes[10..<headerEnd], as: UTF8.self).contains("'shape': (3, 8, 8)"))
    #expect(bytes.count == headerEnd + 3 * 64 * 4)
    let values = stride(from: headerEnd, to: bytes.count, by: 4).map { i in
      Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
    }
    #expect(values.allSatisfy { $0 >= 0 && $0 <= 1 } && Set(values).count > 10)

    let e = try gvae(["image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", b, "--format", "json"])
    #expect(e.status == 0, "\(e.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double], "\(e.stdout)")
    #expect(Set(json.keys) == ["images_a", "images_b", "cycle_error_a", "cycle_error_b"])
    #expect(json["images_a"] == 4 && json["images_b"] == 4)
    for k in ["cycle_error_a", "cycle_error_b"] {
      let v = try #require(json[k])
      #expect(v > 0 && v < 0.5, "\(k) \(v)")
    }
    let text = try gvae(["image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", b, "--limit", "2"])
    #expect(text.status == 0 && text.stdout.contains("images_a 2\n") && text.stdout.contains("cycle_error_b 0."), "\(text.stdout)")
  }

  @Test func labelPreservationWithClassifiers() throws {
    let dir = try cycleData()
    let a = dir.appendingPathComponent("a.csv").path
    let b = dir.appendingPathComponent("b.csv").path
    let model = dir.appendingPathComponent("c.safetensors").path
    let train = try gvae(
      ["image", "cyclegan", "train", "--data-a", a, "--data-b", b, "--output", model, "--epochs", "1"] + tinyOptions)
    #expect(train.status == 0, "\(train.stderr)")
    var classifiers: [String] = []
    for (name, data, size) in [("ka", a, "8"), ("kb", b, "8"), ("k16", b, "16")] {
      let path = dir.appendingPathComponent("\(name).safetensors").path
      let k = try gvae([
        "image", "classifier", "train", "--data", data, "--output", path, "--epochs", "1", "--channels", "4,8",
        "--hidden", "16", "--size", size, "--seed", "1",
      ])
      #expect(k.status == 0, "\(k.stderr)")
      classifiers.append(path)
    }
    let e = try gvae([
      "image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", b, "--classifier-a", classifiers[0],
      "--classifier-b", classifiers[1], "--format", "json",
    ])
    #expect(e.status == 0, "\(e.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double], "\(e.stdout)")
    #expect(
      Set(json.keys) == [
        "images_a", "images_b", "cycle_error_a", "cycle_error_b", "label_preservation_a_to_b", "classifier_b_accuracy",
        "label_preservation_b_to_a", "classifier_a_accuracy",
      ])
    for k in ["label_preservation_a_to_b", "label_preservation_b_to_a", "classifier_a_accuracy", "classifier_b_accuracy"] {
      let v = try #require(json[k])
      // 4 test images: a multiple of 1/4.
      #expect(v >= 0 && v <= 1 && (v * 4).rounded() == v * 4, "\(k) \(v)")
    }
    // A classifier of another size, and data without labels, are refused.
    expectRejected(
      try gvae(["image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", b, "--classifier-b", classifiers[2]]),
      contains: "classifies 16×16 images, the CycleGAN's are 8×8")
    expectRejected(
      try gvae([
        "image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", dir.appendingPathComponent("b.npy").path,
        "--classifier-a", classifiers[0],
      ]),
      contains: "--classifier-a needs labels: the test images of")
    expectRejected(
      try gvae(["image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", b, "--classifier-a", model]),
      contains: "--classifier-a:")
  }

  @Test func badInputIsAClearError() throws {
    let dir = try cycleData()
    let a = dir.appendingPathComponent("a.csv").path
    let b = dir.appendingPathComponent("b.npy").path
    let model = dir.appendingPathComponent("m.safetensors").path
    func train(_ extra: [String]) throws -> ToolResult {
      try gvae(["image", "cyclegan", "train", "--data-a", a, "--data-b", b, "--output", model, "--epochs", "1"] + extra)
    }
    expectRejected(try train(["--size", "10"]), contains: "invalid CycleGAN configuration: 2 downsamplings need height and width divisible by 4")
    expectRejected(try train(tinyOptions + ["--resume"]), contains: "--resume: no checkpoint at \(model).checkpoint")
    expectRejected(try train(["--lr=-1"]), contains: "--lr must be positive")
    expectRejected(
      try gvae(["image", "cyclegan", "train", "--data-a", dir.appendingPathComponent("none").path, "--data-b", b, "--output", model]),
      contains: "none: cannot read: no such file or directory")
    // Not a CycleGAN file: missing, garbage, another kind.
    expectRejected(
      try gvae(["image", "cyclegan", "translate", "--model", model, "--data", a, "--direction", "a-to-b", "--output", model + ".png"]),
      contains: "cannot read model file \(model)")
    try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: model))
    expectRejected(
      try gvae(["image", "cyclegan", "evaluate", "--model", model, "--data-a", a, "--data-b", b]),
      contains: "not a valid model file")
    let header = #"{"__metadata__":{"gvae.kind":"image-vae","gvae.format":"image-1"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
    var file = Data()
    var length = UInt64(header.utf8.count).littleEndian
    file.append(Data(bytes: &length, count: 8))
    file.append(Data(header.utf8))
    file.append(Data([0, 0, 0, 0]))
    try file.write(to: URL(fileURLWithPath: model))
    expectRejected(
      try gvae(["image", "cyclegan", "translate", "--model", model, "--data", a, "--direction", "a-to-b", "--output", model + ".png"]),
      contains: "is a model file of kind image-vae, not a CycleGAN")
    // Options.
    expectRejected(
      try gvae(["image", "cyclegan", "translate", "--model", model, "--data", a, "--direction", "sideways", "--output", model + ".png"]),
      contains: "sideways")
    expectRejected(
      try gvae(["image", "cyclegan", "translate", "--model", model, "--data", a, "--direction", "a-to-b", "--output", model + ".jpg"]),
      contains: "give a .png (grid) or .npy")
    expectRejected(
      try gvae(["image", "cyclegan", "translate", "--model", model, "--data", a, "--direction", "a-to-b", "--output", model + ".png", "--count", "0"]),
      contains: "--count must be in 1…100000")
  }
}
