import Engine
import Foundation
import Images
import Testing

/// A fresh empty directory under the temporary directory.
func scratchDirectory(_ name: String = #function) throws -> URL {
  let safe = name.filter { $0.isLetter || $0.isNumber }
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "gvae-images-\(safe)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

func write(_ bytes: [UInt8], _ url: URL) throws { try Data(bytes).write(to: url) }

/// `n` images of 4×3 with pixel value (i + 7k) mod 256 and labels k mod 10.
func tinyIDX(count n: Int) -> (images: [UInt8], labels: [UInt8]) {
  var px: [UInt8] = []
  for k in 0..<n { for i in 0..<12 { px.append(UInt8((i + 7 * k) % 256)) } }
  return (
    IDXArray.encode(shape: [n, 4, 3], bytes: px),
    IDXArray.encode(shape: [n], bytes: (0..<n).map { UInt8($0 % 10) })
  )
}

func expectError(_ body: () throws -> Void, contains parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
  do {
    try body()
    Issue.record("no error; expected one containing \(parts)", sourceLocation: sourceLocation)
  } catch {
    let text = "\(error)"
    for p in parts {
      #expect(text.contains(p), "error '\(text)' lacks '\(p)'", sourceLocation: sourceLocation)
    }
  }
}

let sharedData = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("shared/data")

@Suite struct ReaderTests {
  @Test func idxRawAndGzipGiveTheSameImages() throws {
    let dir = try scratchDirectory()
    let (images, labels) = tinyIDX(count: 5)
    try write(images, dir.appendingPathComponent("a.idx"))
    try write(try Zlib.deflate(images, gzip: true), dir.appendingPathComponent("a.idx.gz"))
    try write(labels, dir.appendingPathComponent("l.idx"))
    let raw = try ImageSet.readIDX(
      images: dir.appendingPathComponent("a.idx").path, labels: dir.appendingPathComponent("l.idx").path)
    let gz = try ImageSet.readIDX(images: dir.appendingPathComponent("a.idx.gz").path)
    #expect(raw.count == 5 && raw.height == 4 && raw.width == 3)
    #expect(raw.pixels == gz.pixels)
    #expect(raw.labels == [0, 1, 2, 3, 4])
    #expect(raw.pixels[12 + 1] == Float(8) / 255)
  }

  @Test func idxErrorsNameTheFileAndTheProblem() throws {
    let (images, labels) = tinyIDX(count: 5)
    let p = "x.idx"
    expectError({ _ = try IDXArray.decode([0x1F, 0x8C, 8, 3, 0, 0], path: p) }, contains: [p, "bad magic", "1f 8c 08 03"])
    expectError({ _ = try IDXArray.decode([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], path: p) }, contains: ["float32", "unsupported"])
    expectError({ _ = try IDXArray.decode(Array(images.prefix(9)), path: p) }, contains: [p, "truncated", "16 bytes", "has 9"])
    expectError({ _ = try IDXArray.decode(Array(images.dropLast()), path: p) }, contains: ["truncated", "76 bytes", "has 75"])
    expectError({ _ = try IDXArray.decode(images + [1, 2], path: p) }, contains: ["2 bytes after the 5×4×3 array"])
    // Dimensions of 2^32 − 1 each: a truncation error, no allocation from the header.
    let absurd: [UInt8] = [0, 0, 8, 3] + [UInt8](repeating: 0xFF, count: 12) + [1, 2, 3]
    expectError({ _ = try IDXArray.decode(absurd, path: p) }, contains: ["truncated", "has 19"])
    let dir = try scratchDirectory()
    try write(images, dir.appendingPathComponent("i"))
    try write(IDXArray.encode(shape: [4], bytes: [1, 2, 3, 4]), dir.appendingPathComponent("l"))
    expectError(
      { _ = try ImageSet.readIDX(images: dir.appendingPathComponent("i").path, labels: dir.appendingPathComponent("l").path) },
      contains: ["4 labels for the 5 images"])
    try write(labels, dir.appendingPathComponent("l1"))
    expectError({ _ = try ImageSet.readIDX(images: dir.appendingPathComponent("l1").path) }, contains: ["3-dimensional", "[5]"])
    expectError({ _ = try ImageSet.readIDX(images: dir.appendingPathComponent("missing").path) }, contains: ["missing", "no such file"])
  }

  @Test func truncatedAndCorruptGzipAreErrors() throws {
    let (images, _) = tinyIDX(count: 50)
    let gz = try Zlib.deflate(images, gzip: true)
    #expect(try Zlib.inflate(gz) == images)
    let dir = try scratchDirectory()
    let cut = dir.appendingPathComponent("cut.gz")
    try write(Array(gz.prefix(gz.count / 2)), cut)
    expectError({ _ = try IDXArray.read(path: cut.path) }, contains: ["cut.gz", "gzip stream", "truncated"])
    var bad = gz
    bad[12] ^= 0xFF
    bad[13] ^= 0xFF
    expectError({ _ = try Zlib.inflate(bad) }, contains: ["compressed stream"])
    expectError({ _ = try Zlib.inflate(gz, limit: 100) }, contains: ["100-byte limit"])
    // Two concatenated members inflate to both, as gzip -dc does.
    #expect(try Zlib.inflate(gz + gz) == images + images)
  }

  @Test func npyFloat32RoundTripAndErrors() throws {
    let values: [Float] = (0..<(3 * 2 * 5)).map { Float($0) / 29 }
    let bytes = NPYArray.encodeFloat32(shape: [3, 2, 5], values: values)
    #expect(bytes.count == 128 + 4 * values.count)  // header padded to 64 bytes
    let a = try NPYArray.decode(bytes, path: "a.npy")
    #expect(a.shape == [3, 2, 5] && a.values.map(Float.init) == values)
    let dir = try scratchDirectory()
    let f = dir.appendingPathComponent("a.npy")
    try write(bytes, f)
    let set = try ImageSet.readNPY(path: f.path)
    #expect(set.count == 3 && set.height == 2 && set.width == 5)
    expectError({ _ = try NPYArray.decode(Array("NUMPX".utf8) + [1, 0], path: "a.npy") }, contains: ["a.npy", "bad magic"])
    expectError({ _ = try NPYArray.decode(Array(bytes.dropLast(4)), path: "a.npy") }, contains: ["truncated", "has \(bytes.count - 4)"])
    expectError({ _ = try NPYArray.decode(bytes + [0, 0, 0, 0], path: "a.npy") }, contains: ["4 bytes after"])
    var huge = bytes
    huge[8] = 0xFF
    huge[9] = 0xFF
    expectError({ _ = try NPYArray.decode(huge, path: "a.npy") }, contains: ["truncated", "65545"])
    let big = NPYArray.encodeFloat32(shape: [1, 1, 2], values: [0.5, 1.5])
    try write(big, f)
    expectError({ _ = try ImageSet.readNPY(path: f.path) }, contains: ["image 0, pixel (0, 1)", "1.5", "outside [0, 1]"])
    let flat = NPYArray.encodeFloat32(shape: [4], values: [0, 0, 0, 0])
    try write(flat, f)
    expectError({ _ = try ImageSet.readNPY(path: f.path) }, contains: ["[count, height, width]", "[4]"])
    var other = bytes
    let at = (0..<(other.count - 3)).first { Array(other[$0..<($0 + 3)]) == Array("<f4".utf8) }!
    other.replaceSubrange(at..<(at + 3), with: Array("<i8".utf8))
    expectError({ _ = try NPYArray.decode(other, path: "a.npy") }, contains: ["dtype '<i8'"])
  }

  @Test func digitsCSV() throws {
    let dir = try scratchDirectory()
    let row = (0..<64).map { String($0 % 17) }.joined(separator: ",") + ",7"
    let f = dir.appendingPathComponent("digits.csv.gz")
    try write(try Zlib.deflate(Array((row + "\n" + row + "\n").utf8), gzip: true), f)
    let s = try ImageSet.readDigitsCSV(path: f.path)
    #expect(s.count == 2 && s.height == 8 && s.labels == [7, 7] && s.pixels[16] == 16 / 16)
    let g = dir.appendingPathComponent("bad.csv")
    try write(Array((row + "\n1,2,3\n").utf8), g)
    expectError({ _ = try ImageSet.readDigitsCSV(path: g.path) }, contains: ["bad.csv", "line 2", "found 3"])
    try write(Array((row.dropLast() + "x\n").utf8), g)
    expectError({ _ = try ImageSet.readDigitsCSV(path: g.path) }, contains: ["line 1, column 65", "'x'"])
    try write(Array(("17," + row.dropFirst(2) + "\n").utf8), g)
    expectError({ _ = try ImageSet.readDigitsCSV(path: g.path) }, contains: ["column 1", "outside 0…16"])
  }

  @Test func dataLayouts() throws {
    let dir = try scratchDirectory()
    let (images, labels) = tinyIDX(count: 6)
    try write(images, dir.appendingPathComponent("train-images-idx3-ubyte"))
    try write(labels, dir.appendingPathComponent("train-labels-idx1-ubyte"))
    expectError({ _ = try ImageData.load(dir.path) }, contains: ["unknown data layout", "t10k-images-idx3-ubyte"])
    try write(try Zlib.deflate(tinyIDX(count: 2).images, gzip: true), dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"))
    let d = try ImageData.load(dir.path)
    #expect(d.train.count == 6 && d.test.count == 2 && d.layout == "mnist-idx" && d.train.labels != nil)
    #expect(d.test.labels == nil)

    let other = try scratchDirectory("other")
    expectError({ _ = try ImageData.load(other.path) }, contains: ["unknown data layout"])
    try write(NPYArray.encodeFloat32(shape: [20, 2, 2], values: [Float](repeating: 0.25, count: 80)), other.appendingPathComponent("f.npy"))
    let n = try ImageData.load(other.path)
    #expect(n.train.count == 18 && n.test.count == 2 && n.layout == "npy")
    try write([1], other.appendingPathComponent("g.csv"))
    expectError({ _ = try ImageData.load(other.path) }, contains: ["2 data files"])
  }

  @Test func binarisation() {
    var rng = SeededRandom(seed: 3)
    let x = Tensor(shape: [1, 4000], storage: (0..<4000).map { Float($0 % 4) / 3 })
    let b = Binarization.sample(x, rng: &rng)
    #expect(b.storage.allSatisfy { $0 == 0 || $0 == 1 })
    for level in 0..<4 {
      let picked = (0..<4000).filter { $0 % 4 == level }.map { b.storage[$0] }
      let mean = picked.reduce(0, +) / Float(picked.count)
      #expect(abs(mean - Float(level) / 3) < 0.05)
    }
    let c = Binarization.sample(x, rng: &rng)
    #expect(b != c)  // fresh draws
    let set = ImageSet(height: 2, width: 2, pixels: [0.5, 0.5, 0.5, 0.5, 1, 0, 1, 0])
    #expect(Binarization.fixed(set) == Binarization.fixed(set))
    #expect(Array(Binarization.fixed(set).pixels.suffix(4)) == [1, 0, 1, 0])
  }

  @Test(.enabled(if: FileManager.default.fileExists(atPath: sharedData.path)))
  func sharedDataSets() throws {
    let mnist = try ImageData.load(sharedData.appendingPathComponent("mnist").path)
    #expect(mnist.train.count == 60_000 && mnist.test.count == 10_000 && mnist.train.height == 28)
    let mean = mnist.train.pixels.reduce(0.0) { $0 + Double($1) } / Double(mnist.train.pixels.count)
    #expect(abs(mean - 0.1307) < 0.001)
    let faces = try ImageData.load(sharedData.appendingPathComponent("faces").path)
    #expect(faces.train.count + faces.test.count == 200 && faces.train.height == 25)
    let digits = try ImageData.load(sharedData.appendingPathComponent("digits8x8").path)
    #expect(digits.train.count + digits.test.count == 1797 && digits.test.labels?.count == 179)
  }
}
