// Readers for the image formats in ../shared/data: MNIST idx (gzip or raw), NumPy .npy and
// the UCI 8×8 digits CSV. Every header number is checked against the bytes present before
// it sizes anything.
import Foundation

/// The bytes of a file, inflated when it starts with the gzip magic number.
public func readMaybeGzip(_ path: String, limit: Int = 1 << 31) throws(ImageDataError) -> [UInt8] {
  guard let data = FileManager.default.contents(atPath: path) else {
    var isDir: ObjCBool = false
    let why =
      FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
      ? (isDir.boolValue ? "is a directory" : "permission denied") : "no such file"
    throw .unreadable(path: path, why)
  }
  let bytes = [UInt8](data)
  guard Zlib.isGzip(bytes) else { return bytes }
  do { return try Zlib.inflate(bytes, limit: limit) } catch {
    throw .malformed(path: path, at: "gzip stream", "\(error)")
  }
}

// MARK: - idx

/// An idx array of unsigned bytes (the MNIST format): a big-endian header
/// `0x00 0x00 0x08 ndim`, `ndim` UInt32 dimensions, then the data.
public struct IDXArray: Sendable, Equatable {
  public var shape: [Int]
  public var bytes: [UInt8]

  public init(shape: [Int], bytes: [UInt8]) {
    self.shape = shape
    self.bytes = bytes
  }

  public static func read(path: String) throws(ImageDataError) -> IDXArray {
    try decode(readMaybeGzip(path), path: path)
  }

  public static func decode(_ b: [UInt8], path: String) throws(ImageDataError) -> IDXArray {
    guard b.count >= 4 else { throw .truncated(path: path, needed: 4, available: b.count) }
    guard b[0] == 0 && b[1] == 0 && (1...4).contains(b[3]) else {
      throw .badMagic(
        path: path, expected: "00 00 <type> <1…4 dimensions> (idx)",
        found: b[0..<4].map { String(format: "%02x", $0) }.joined(separator: " "))
    }
    guard b[2] == 0x08 else {
      let names: [UInt8: String] = [
        0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64",
      ]
      throw .unsupported(
        path: path,
        "idx element type 0x\(String(format: "%02x", b[2])) (\(names[b[2]] ?? "unknown")); only unsigned bytes (0x08)")
    }
    let ndim = Int(b[3])
    let headerSize = 4 + 4 * ndim
    guard b.count >= headerSize else {
      throw .truncated(path: path, needed: headerSize, available: b.count)
    }
    var shape: [Int] = []
    for d in 0..<ndim {
      let o = 4 + 4 * d
      shape.append(Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]))
    }
    // At most 2^32·… fits in Int only if checked; an absurd product is a truncation too.
    guard let n = checkedProduct(shape), n <= b.count - headerSize else {
      let needed = checkedProduct(shape).map { $0 + headerSize } ?? Int.max
      throw .truncated(path: path, needed: needed, available: b.count)
    }
    guard n == b.count - headerSize else {
      throw .mismatch(
        path: path,
        "\(b.count - headerSize - n) bytes after the \(shape.map(String.init).joined(separator: "×")) array the header describes")
    }
    return IDXArray(shape: shape, bytes: Array(b[headerSize...]))
  }

  /// The bytes of an idx file for `shape` (written by tests and tools).
  public static func encode(shape: [Int], bytes: [UInt8]) -> [UInt8] {
    precondition(checkedProduct(shape) == bytes.count && (1...4).contains(shape.count))
    var out: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
    for d in shape { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return out + bytes
  }
}

extension ImageSet {
  /// Images from an idx file of rank 3 ([n, h, w], bytes / 255) and, when given, labels from
  /// an idx file of rank 1 with the same count.
  public static func readIDX(images: String, labels: String? = nil) throws(ImageDataError)
    -> ImageSet
  {
    let a = try IDXArray.read(path: images)
    guard a.shape.count == 3, a.shape[1] > 0, a.shape[2] > 0 else {
      throw .mismatch(
        path: images, "expected a 3-dimensional image array [count, height, width], found shape \(a.shape)")
    }
    var labelValues: [Int]? = nil
    if let labels {
      let l = try IDXArray.read(path: labels)
      guard l.shape.count == 1 else {
        throw .mismatch(path: labels, "expected a 1-dimensional label array, found shape \(l.shape)")
      }
      guard l.shape[0] == a.shape[0] else {
        throw .mismatch(path: labels, "\(l.shape[0]) labels for the \(a.shape[0]) images of \(images)")
      }
      labelValues = l.bytes.map(Int.init)
    }
    return ImageSet(
      height: a.shape[1], width: a.shape[2], pixels: a.bytes.map { Float($0) / 255 },
      labels: labelValues)
  }
}

// MARK: - npy

/// A NumPy `.npy` array (format versions 1–3) of float64, float32 or uint8, C order.
public struct NPYArray: Sendable, Equatable {
  public var shape: [Int]
  /// Values as Double (uint8 as 0…255).
  public var values: [Double]

  public static func read(path: String) throws(ImageDataError) -> NPYArray {
    try decode(readMaybeGzip(path), path: path)
  }

  public static func decode(_ b: [UInt8], path: String) throws(ImageDataError) -> NPYArray {
    let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    guard b.count >= 6, Array(b[0..<6]) == magic else {
      throw .badMagic(
        path: path, expected: "\\x93NUMPY (.npy)",
        found: b.prefix(6).map { String(format: "%02x", $0) }.joined(separator: " "))
    }
    guard b.count >= 10 else { throw .truncated(path: path, needed: 10, available: b.count) }
    let major = b[6]
    let headerLength: Int
    let headerStart: Int
    switch major {
    case 1:
      headerLength = Int(b[8]) | Int(b[9]) << 8
      headerStart = 10
    case 2, 3:
      guard b.count >= 12 else { throw .truncated(path: path, needed: 12, available: b.count) }
      headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
      headerStart = 12
    default:
      throw .unsupported(path: path, ".npy format version \(major).\(b[7]) (1, 2 or 3)")
    }
    guard headerLength <= b.count - headerStart else {
      throw .truncated(path: path, needed: headerStart + headerLength, available: b.count)
    }
    guard let header = String(bytes: b[headerStart..<(headerStart + headerLength)], encoding: .utf8)
    else { throw .malformed(path: path, at: "header", "not text") }
    func field(_ key: String) throws(ImageDataError) -> Substring {
      guard let r = header.range(of: "'\(key)':") else {
        throw .malformed(path: path, at: "header", "no '\(key)' field in \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
      }
      return header[r.upperBound...].drop { $0 == " " }
    }
    let descrField = try field("descr")
    guard descrField.first == "'", let close = descrField.dropFirst().firstIndex(of: "'") else {
      throw .malformed(path: path, at: "header", "'descr' is not a quoted string")
    }
    let descr = String(descrField[descrField.index(after: descrField.startIndex)..<close])
    if try field("fortran_order").hasPrefix("True") {
      throw .unsupported(path: path, "Fortran-order arrays (save with C order)")
    }
    let shapeField = try field("shape")
    guard shapeField.first == "(", let end = shapeField.firstIndex(of: ")") else {
      throw .malformed(path: path, at: "header", "'shape' is not a tuple")
    }
    var shape: [Int] = []
    for part in shapeField[shapeField.index(after: shapeField.startIndex)..<end].split(separator: ",") {
      let t = part.trimmingCharacters(in: .whitespaces)
      guard let v = Int(t), v >= 0 else {
        throw .malformed(path: path, at: "header", "shape entry '\(t)' is not a dimension")
      }
      shape.append(v)
    }
    let itemSize: Int
    let bigEndian = descr.hasPrefix(">")
    switch descr.dropFirst() {
    case "f8" where !descr.hasPrefix("|"): itemSize = 8
    case "f4" where !descr.hasPrefix("|"): itemSize = 4
    case "u1": itemSize = 1
    default:
      throw .unsupported(path: path, "dtype '\(descr)' (float64, float32 or uint8)")
    }
    let dataStart = headerStart + headerLength
    let available = b.count - dataStart
    guard let n = checkedProduct(shape), let bytes = checkedProduct([n, itemSize]), bytes <= available
    else {
      let needed = checkedProduct(shape).flatMap { checkedProduct([$0, itemSize]) }.map { $0 + dataStart }
      throw .truncated(path: path, needed: needed ?? Int.max, available: b.count)
    }
    guard bytes == available else {
      throw .mismatch(path: path, "\(available - bytes) bytes after the \(shape) \(descr) array")
    }
    var values = [Double](repeating: 0, count: n)
    b.withUnsafeBufferPointer { p in
      let base = p.baseAddress! + dataStart
      for i in 0..<n {
        switch itemSize {
        case 1: values[i] = Double(base[i])
        case 4:
          var u = UInt32(0)
          memcpy(&u, base + 4 * i, 4)
          values[i] = Double(Float(bitPattern: bigEndian ? u.byteSwapped : u))
        default:
          var u = UInt64(0)
          memcpy(&u, base + 8 * i, 8)
          values[i] = Double(bitPattern: bigEndian ? u.byteSwapped : u)
        }
      }
    }
    if itemSize == 1 { values = values.map { $0 / 255 } }
    return NPYArray(shape: shape, values: values)
  }

  /// A version-1 .npy file of little-endian float32 (what `image vae sample` writes).
  public static func encodeFloat32(shape: [Int], values: [Float]) -> [UInt8] {
    precondition(checkedProduct(shape) == values.count)
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
    // The magic, version and length take 10 bytes; the header ends with \n at a multiple of 64.
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    let h = Array(header.utf8)
    out += [UInt8(h.count & 255), UInt8(h.count >> 8)]
    out += h
    out.reserveCapacity(out.count + 4 * values.count)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
    return out
  }
}

extension ImageSet {
  /// Images from a .npy array [n, h, w] (or [n, h, w, 1]) of values in [0, 1] (uint8: / 255).
  public static func readNPY(path: String) throws(ImageDataError) -> ImageSet {
    let a = try NPYArray.read(path: path)
    var s = a.shape
    if s.count == 4 && s[3] == 1 { s.removeLast() }
    guard s.count == 3, s[1] > 0, s[2] > 0 else {
      throw .mismatch(path: path, "expected an image array [count, height, width], found shape \(a.shape)")
    }
    let d = s[1] * s[2]
    var pixels = [Float](repeating: 0, count: a.values.count)
    for (i, v) in a.values.enumerated() {
      guard v >= 0 && v <= 1 else {
        let p = i % d
        throw .malformed(
          path: path, at: "image \(i / d), pixel (\(p / s[2]), \(p % s[2]))",
          "value \(v) is outside [0, 1]")
      }
      pixels[i] = Float(v)
    }
    return ImageSet(height: s[1], width: s[2], pixels: pixels)
  }

  /// The UCI optical digits as scikit-learn ships them: one image per line, 64 pixel values
  /// 0…16 (8×8, row-major) and the label 0…9, comma-separated, no header. Pixels / 16.
  public static func readDigitsCSV(path: String) throws(ImageDataError) -> ImageSet {
    let bytes = try readMaybeGzip(path)
    guard let text = String(bytes: bytes, encoding: .utf8) else {
      throw .malformed(path: path, at: "file", "not UTF-8 text")
    }
    var pixels: [Float] = []
    var labels: [Int] = []
    var lineNumber = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let row = line.trimmingCharacters(in: .whitespaces.union(.init(charactersIn: "\r")))
      if row.isEmpty { continue }
      let cells = row.split(separator: ",", omittingEmptySubsequences: false)
      guard cells.count == 65 else {
        throw .malformed(
          path: path, at: "line \(lineNumber)",
          "expected 65 comma-separated columns (64 pixels of an 8×8 image, then the label), found \(cells.count)")
      }
      for (c, cell) in cells.enumerated() {
        let t = cell.trimmingCharacters(in: .whitespaces)
        guard let v = Int(t) ?? Double(t).flatMap({ $0 == $0.rounded() ? Int(exactly: $0) : nil }) else {
          throw .malformed(path: path, at: "line \(lineNumber), column \(c + 1)", "'\(t)' is not an integer")
        }
        if c < 64 {
          guard (0...16).contains(v) else {
            throw .malformed(path: path, at: "line \(lineNumber), column \(c + 1)", "pixel \(v) is outside 0…16")
          }
          pixels.append(Float(v) / 16)
        } else {
          guard (0...9).contains(v) else {
            throw .malformed(path: path, at: "line \(lineNumber), column 65", "label \(v) is outside 0…9")
          }
          labels.append(v)
        }
      }
    }
    guard !labels.isEmpty else { throw .mismatch(path: path, "no images") }
    return ImageSet(height: 8, width: 8, pixels: pixels, labels: labels)
  }
}
