import Engine
import Foundation

/// Element types of the safetensors format that we read; `F32` and `F16` are also written.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
  case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

  public var byteSize: Int {
    switch self {
    case .F64, .I64: return 8
    case .F32, .I32: return 4
    case .F16, .BF16, .I16: return 2
    case .I8, .U8, .BOOL: return 1
    }
  }

  /// Whether values convert to Float without losing meaning (integer types load as Float).
  public var isFloatingPoint: Bool { self == .F64 || self == .F32 || self == .F16 || self == .BF16 }
}

/// Why a safetensors file could not be read or written.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
  /// Fewer bytes than the 8-byte length prefix, the header or the data need.
  case truncated(needed: Int, available: Int)
  /// The header length is implausible (over 100 MB).
  case headerTooLarge(Int)
  /// The header is not the JSON object the format describes.
  case corruptHeader(String)
  case unknownDType(tensor: String, dtype: String)
  case invalidShape(tensor: String, String)
  case offsetsOutOfBounds(tensor: String, begin: Int, end: Int, dataSize: Int)
  case byteCountMismatch(tensor: String, expected: Int, actual: Int)
  case overlappingTensors(String, String)
  case unsupportedWriteDType(SafeTensorsDType)
  case io(String)

  public var description: String {
    switch self {
    case .truncated(let n, let a): return "safetensors: truncated file: needs \(n) bytes, has \(a)"
    case .headerTooLarge(let n): return "safetensors: header length \(n) exceeds the 100 MB limit"
    case .corruptHeader(let why): return "safetensors: corrupt header: \(why)"
    case .unknownDType(let t, let d): return "safetensors: tensor '\(t)' has unknown dtype '\(d)'"
    case .invalidShape(let t, let why):
      return "safetensors: tensor '\(t)' has an invalid shape: \(why)"
    case .offsetsOutOfBounds(let t, let b, let e, let n):
      return
        "safetensors: tensor '\(t)' data_offsets [\(b), \(e)] outside the \(n)-byte data section"
    case .byteCountMismatch(let t, let e, let a):
      return
        "safetensors: tensor '\(t)' needs \(e) bytes for its dtype and shape, offsets give \(a)"
    case .overlappingTensors(let a, let b): return "safetensors: tensors '\(a)' and '\(b)' overlap"
    case .unsupportedWriteDType(let d):
      return "safetensors: writing \(d.rawValue) is not supported (F32, F16)"
    case .io(let why): return "safetensors: \(why)"
    }
  }
}

/// One tensor read from a safetensors file, converted to Float.
public struct SafeTensorsEntry: Sendable, Equatable {
  public var dtype: SafeTensorsDType
  public var tensor: Tensor

  public init(dtype: SafeTensorsDType, tensor: Tensor) {
    self.dtype = dtype
    self.tensor = tensor
  }
}

/// The safetensors checkpoint format (Hugging Face): an 8-byte little-endian header length,
/// a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`
/// and the raw little-endian data, offsets relative to the data section.
public struct SafeTensorsFile: Sendable, Equatable {
  public var entries: [String: SafeTensorsEntry]
  public var metadata: [String: String]

  public init(entries: [String: SafeTensorsEntry] = [:], metadata: [String: String] = [:]) {
    self.entries = entries
    self.metadata = metadata
  }

  /// Tensors to write, all in `dtype`.
  public init(
    tensors: [String: Tensor], dtype: SafeTensorsDType = .F32, metadata: [String: String] = [:]
  ) {
    self.entries = tensors.mapValues { SafeTensorsEntry(dtype: dtype, tensor: $0) }
    self.metadata = metadata
  }

  public var tensors: [String: Tensor] { entries.mapValues(\.tensor) }

  public static let maxHeaderSize = 100_000_000

  // MARK: Encoding

  /// The file's bytes: names sorted, data in name order, header padded with spaces to a
  /// multiple of 8 bytes (as the Python library does).
  public func encoded() throws -> Data {
    let names = entries.keys.sorted()
    var offset = 0
    var headerParts: [String] = []
    if !metadata.isEmpty {
      let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
      headerParts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
    }
    var data = Data()
    for name in names {
      let e = entries[name]!
      let bytes = try encode(e.tensor, as: e.dtype)
      let shape = e.tensor.shape.map(String.init).joined(separator: ",")
      headerParts.append(
        "\(jsonString(name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes.count)]}"
      )
      offset += bytes.count
      data.append(bytes)
    }
    var header = Array(("{" + headerParts.joined(separator: ",") + "}").utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    var out = Data(capacity: 8 + header.count + data.count)
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: header)
    out.append(data)
    return out
  }

  /// Writes atomically: a temporary file in the same directory, then a rename.
  public func write(to url: URL) throws {
    let bytes = try encoded()
    let dir = url.deletingLastPathComponent()
    let temp = dir.appendingPathComponent(
      ".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
    do { try bytes.write(to: temp) } catch {
      try? FileManager.default.removeItem(at: temp)
      throw SafeTensorsError.io("cannot write \(url.path): \(error.localizedDescription)")
    }
    // rename(2) replaces the target atomically: a reader sees the old or the new file.
    guard rename(temp.path, url.path) == 0 else {
      let code = errno
      try? FileManager.default.removeItem(at: temp)
      throw SafeTensorsError.io(
        "cannot write \(url.path): rename failed: \(String(cString: strerror(code)))")
    }
  }

  // MARK: Decoding

  public init(contentsOf url: URL) throws {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
      throw SafeTensorsError.io("cannot read \(url.path): \(error.localizedDescription)")
    }
    try self.init(decoding: data)
  }

  /// Parses and validates a whole file.
  public init(decoding data: Data) throws {
    let bytes = [UInt8](data)
    guard bytes.count >= 8 else {
      throw SafeTensorsError.truncated(needed: 8, available: bytes.count)
    }
    var n: UInt64 = 0
    for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard n <= UInt64(SafeTensorsFile.maxHeaderSize) else {
      throw SafeTensorsError.headerTooLarge(Int(clamping: n))
    }
    let headerSize = Int(n)
    guard bytes.count >= 8 + headerSize else {
      throw SafeTensorsError.truncated(needed: 8 + headerSize, available: bytes.count)
    }
    let json: Any
    do {
      json = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerSize)]), options: [])
    } catch {
      throw SafeTensorsError.corruptHeader("not valid JSON")
    }
    guard let header = json as? [String: Any] else {
      throw SafeTensorsError.corruptHeader("not a JSON object")
    }
    let dataStart = 8 + headerSize
    let dataSize = bytes.count - dataStart
    var metadata: [String: String] = [:]
    var spans: [(begin: Int, end: Int, name: String)] = []
    var parsed: [(String, SafeTensorsDType, [Int], Int, Int)] = []
    for (name, value) in header {
      if name == "__metadata__" {
        guard let m = value as? [String: Any] else {
          throw SafeTensorsError.corruptHeader("__metadata__ is not an object")
        }
        for (k, v) in m {
          guard let s = v as? String else {
            throw SafeTensorsError.corruptHeader("__metadata__ value for '\(k)' is not a string")
          }
          metadata[k] = s
        }
        continue
      }
      guard let info = value as? [String: Any] else {
        throw SafeTensorsError.corruptHeader("entry '\(name)' is not an object")
      }
      guard let dtypeName = info["dtype"] as? String else {
        throw SafeTensorsError.corruptHeader("entry '\(name)' has no dtype")
      }
      guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
        throw SafeTensorsError.unknownDType(tensor: name, dtype: dtypeName)
      }
      guard let shapeAny = info["shape"] as? [Any] else {
        throw SafeTensorsError.corruptHeader("entry '\(name)' has no shape")
      }
      var shape: [Int] = []
      for d in shapeAny {
        guard let num = d as? NSNumber, let i = Int(exactly: num.doubleValue), i >= 0 else {
          throw SafeTensorsError.invalidShape(tensor: name, "\(shapeAny)")
        }
        shape.append(i)
      }
      guard let offsets = info["data_offsets"] as? [Any], offsets.count == 2,
        let b = (offsets[0] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }),
        let e = (offsets[1] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) })
      else { throw SafeTensorsError.corruptHeader("entry '\(name)' has no valid data_offsets") }
      guard b >= 0, b <= e, e <= dataSize else {
        throw SafeTensorsError.offsetsOutOfBounds(
          tensor: name, begin: b, end: e, dataSize: dataSize)
      }
      var count = 1
      for d in shape {
        let (p, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow else {
          throw SafeTensorsError.invalidShape(tensor: name, "element count overflows")
        }
        count = p
      }
      guard count.multipliedReportingOverflow(by: dtype.byteSize).overflow == false,
        count * dtype.byteSize == e - b
      else {
        throw SafeTensorsError.byteCountMismatch(
          tensor: name, expected: count &* dtype.byteSize, actual: e - b)
      }
      spans.append((b, e, name))
      parsed.append((name, dtype, shape, b, e))
    }
    spans.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
    for i in spans.indices.dropFirst() where spans[i].begin < spans[i - 1].end {
      throw SafeTensorsError.overlappingTensors(spans[i - 1].name, spans[i].name)
    }
    var entries: [String: SafeTensorsEntry] = [:]
    for (name, dtype, shape, b, e) in parsed {
      let t = bytes.withUnsafeBufferPointer {
        decode(
          UnsafeRawBufferPointer($0)[(dataStart + b)..<(dataStart + e)], dtype: dtype, shape: shape)
      }
      entries[name] = SafeTensorsEntry(dtype: dtype, tensor: t)
    }
    self.init(entries: entries, metadata: metadata)
  }
}

/// A JSON string literal (quotes and escapes), as safetensors headers and JSON lines need.
public func jsonString(_ s: String) -> String {
  var out = "\""
  for u in s.unicodeScalars {
    switch u {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    default:
      if u.value < 0x20 {
        out += String(format: "\\u%04x", u.value)
      } else {
        out.unicodeScalars.append(u)
      }
    }
  }
  return out + "\""
}

func encode(_ t: Tensor, as dtype: SafeTensorsDType) throws -> Data {
  var out = Data(capacity: t.count * dtype.byteSize)
  switch dtype {
  case .F32:
    for v in t.storage {
      withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) }
    }
  case .F16:
    for v in t.storage {
      withUnsafeBytes(of: floatToHalfBits(v).littleEndian) { out.append(contentsOf: $0) }
    }
  default:
    throw SafeTensorsError.unsupportedWriteDType(dtype)
  }
  return out
}

func decode(_ raw: Slice<UnsafeRawBufferPointer>, dtype: SafeTensorsDType, shape: [Int]) -> Tensor {
  let count = shape.reduce(1, *)
  var values = [Float](repeating: 0, count: count)
  let base = raw.startIndex
  func u64(_ i: Int, _ size: Int) -> UInt64 {
    var v: UInt64 = 0
    for k in 0..<size { v |= UInt64(raw[base + i * size + k]) << (8 * UInt64(k)) }
    return v
  }
  for i in 0..<count {
    switch dtype {
    case .F32: values[i] = Float(bitPattern: UInt32(u64(i, 4)))
    case .F64: values[i] = Float(Double(bitPattern: u64(i, 8)))
    case .F16: values[i] = halfBitsToFloat(UInt16(u64(i, 2)))
    case .BF16: values[i] = Float(bitPattern: UInt32(u64(i, 2)) << 16)
    case .I64: values[i] = Float(Int64(bitPattern: u64(i, 8)))
    case .I32: values[i] = Float(Int32(bitPattern: UInt32(u64(i, 4))))
    case .I16: values[i] = Float(Int16(bitPattern: UInt16(u64(i, 2))))
    case .I8: values[i] = Float(Int8(bitPattern: UInt8(u64(i, 1))))
    case .U8, .BOOL: values[i] = Float(u64(i, 1))
    }
  }
  return Tensor(shape: shape, storage: values)
}

/// IEEE binary16 bits of `f`, rounding to nearest even (overflow → ±inf, NaN kept).
public func floatToHalfBits(_ f: Float) -> UInt16 {
  let x = f.bitPattern
  let sign = UInt16((x >> 16) & 0x8000)
  let exp = Int((x >> 23) & 0xFF)
  var mant = x & 0x7F_FFFF
  if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
  let e = exp - 127 + 15
  if e >= 0x1F { return sign | 0x7C00 }
  if e <= 0 {
    if e < -10 { return sign }
    mant |= 0x80_0000
    let shift = UInt32(14 - e)
    var h = mant >> shift
    let rem = mant & ((1 << shift) - 1)
    let half = UInt32(1) << (shift - 1)
    if rem > half || (rem == half && (h & 1) == 1) { h += 1 }
    return sign | UInt16(h)
  }
  var h = UInt32(e) << 10 | (mant >> 13)
  let rem = mant & 0x1FFF
  if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) { h += 1 }  // may carry into the exponent: correct
  return sign | UInt16(h)
}

/// The Float value of IEEE binary16 bits.
public func halfBitsToFloat(_ h: UInt16) -> Float {
  let sign: Float = (h & 0x8000) != 0 ? -1 : 1
  let exp = Int((h >> 10) & 0x1F)
  let mant = Float(h & 0x3FF)
  if exp == 0 { return sign * mant * 0x1p-24 }
  if exp == 0x1F { return mant == 0 ? sign * .infinity : .nan }
  return sign * (1 + mant / 1024) * Float(sign: .plus, exponent: exp - 15, significand: 1)
}

// MARK: - Loading into a model

/// What differs between a checkpoint and the tensors a model expects.
public struct CheckpointMismatch: Error, CustomStringConvertible, Equatable {
  public var missing: [String]
  public var unexpected: [String]
  public var shapeMismatches: [(name: String, expected: [Int], found: [Int])]
  public var dtypeMismatches: [(name: String, found: String)]

  public var isEmpty: Bool {
    missing.isEmpty && unexpected.isEmpty && shapeMismatches.isEmpty && dtypeMismatches.isEmpty
  }

  public var description: String {
    var lines = ["checkpoint does not match the model:"]
    if !missing.isEmpty { lines.append("  missing: \(missing.joined(separator: ", "))") }
    if !unexpected.isEmpty { lines.append("  unexpected: \(unexpected.joined(separator: ", "))") }
    for m in shapeMismatches {
      lines.append("  shape of \(m.name): model \(m.expected) vs checkpoint \(m.found)")
    }
    for m in dtypeMismatches {
      lines.append("  dtype of \(m.name): \(m.found) is not a floating-point type")
    }
    return lines.joined(separator: "\n")
  }

  public static func == (a: CheckpointMismatch, b: CheckpointMismatch) -> Bool {
    a.description == b.description
  }
}

extension SafeTensorsFile {
  /// Copies tensors into `parameters` by name, after checking that every name is present,
  /// with the same shape and a floating-point dtype; with `allowUnexpected == false` extra
  /// names in the file are an error too. Nothing is assigned unless everything matches.
  ///
  /// - Throws: `CheckpointMismatch` listing every difference.
  public func load(into parameters: [Parameter], allowUnexpected: Bool = false) throws {
    var mismatch = CheckpointMismatch(
      missing: [], unexpected: [], shapeMismatches: [], dtypeMismatches: [])
    let expected = Set(parameters.map(\.name))
    for p in parameters {
      guard let e = entries[p.name] else {
        mismatch.missing.append(p.name)
        continue
      }
      if e.tensor.shape != p.value.shape {
        mismatch.shapeMismatches.append((p.name, p.value.shape, e.tensor.shape))
      }
      if !e.dtype.isFloatingPoint { mismatch.dtypeMismatches.append((p.name, e.dtype.rawValue)) }
    }
    if !allowUnexpected {
      mismatch.unexpected = entries.keys.filter { !expected.contains($0) }.sorted()
    }
    guard mismatch.isEmpty else { throw mismatch }
    for p in parameters { p.value = entries[p.name]!.tensor }
  }
}

/// A training checkpoint: model parameters, buffers (running statistics), optimiser state
/// under `"optimizer."` and string metadata, in one safetensors file.
public enum Checkpoint {
  public static let optimizerPrefix = "optimizer."

  public static func save(
    parameters: [Parameter], buffers: [Parameter] = [], optimizer: (any Optimizer)? = nil,
    metadata: [String: String] = [:], dtype: SafeTensorsDType = .F32, to url: URL
  ) throws {
    var tensors: [String: Tensor] = [:]
    for p in parameters + buffers { tensors[p.name] = p.value }
    var file = SafeTensorsFile(tensors: tensors, dtype: dtype, metadata: metadata)
    // Optimiser state stays F32 so that resuming is exact.
    for (k, t) in optimizer?.stateTensors() ?? [:] {
      file.entries[optimizerPrefix + k] = SafeTensorsEntry(dtype: .F32, tensor: t)
    }
    try file.write(to: url)
  }

  /// Loads parameters and buffers (strictly) and, if given, the optimiser state; returns
  /// the metadata.
  @discardableResult
  public static func load(
    parameters: [Parameter], buffers: [Parameter] = [], optimizer: (any Optimizer)? = nil,
    from url: URL
  ) throws -> [String: String] {
    var file = try SafeTensorsFile(contentsOf: url)
    var state: [String: Tensor] = [:]
    for (k, e) in file.entries where k.hasPrefix(optimizerPrefix) {
      state[String(k.dropFirst(optimizerPrefix.count))] = e.tensor
      file.entries[k] = nil
    }
    try file.load(into: parameters + buffers)
    if let optimizer { try optimizer.loadState(state) }
    return file.metadata
  }
}
