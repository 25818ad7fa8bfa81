// A small safetensors reader/writer with string metadata and F16 storage (the model file
// and checkpoint format). Foundation at the edge: file I/O only.
import Engine
import Foundation

/// Tensors by name plus string metadata, as stored in a `.safetensors` file.
///
/// Layout: 8-byte little-endian header length, a JSON header (`name → {dtype, shape,
/// data_offsets}` and `__metadata__`), then the raw little-endian data. F32 and F16 are read;
/// writing uses F16 for every tensor when `half` is set.
public struct SafeTensors: Sendable {
  public var tensors: [String: Tensor] = [:]
  public var metadata: [String: String] = [:]

  public init() {}

  public func encoded(half: Bool = false) -> Data {
    var header: [String: Any] = ["__metadata__": metadata]
    var offset = 0
    let names = tensors.keys.sorted()
    for name in names {
      let t = tensors[name]!
      let bytes = t.count * (half ? 2 : 4)
      header[name] = [
        "dtype": half ? "F16" : "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes],
      ]
      offset += bytes
    }
    var json =
      (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data()
    while (json.count + 8) % 8 != 0 { json.append(0x20) }
    var out = Data()
    out.reserveCapacity(8 + json.count + offset)
    var n = UInt64(json.count).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(json)
    for name in names {
      let t = tensors[name]!
      if half {
        var h = [UInt16](repeating: 0, count: t.count)
        for i in 0..<t.count { h[i] = Float16(t.storage[i]).bitPattern.littleEndian }
        h.withUnsafeBytes { out.append(contentsOf: $0) }
      } else {
        t.storage.withUnsafeBytes { out.append(contentsOf: $0) }
      }
    }
    return out
  }

  /// Writes atomically: a temporary file beside `path`, then a rename.
  public func write(to path: String, half: Bool = false) throws(ModelError) {
    let data = encoded(half: half)
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(
      ".\(url.lastPathComponent).tmp-\(getpid())")
    do {
      try data.write(to: tmp)
      // rename(2) replaces the target atomically: a reader sees the old or the new file.
      guard rename(tmp.path, path) == 0 else {
        throw ModelError.file("cannot rename \(tmp.path) to \(path): errno \(errno)")
      }
    } catch {
      try? FileManager.default.removeItem(at: tmp)
      throw .file("cannot write \(path): \(error.localizedDescription)")
    }
  }

  public static func read(path: String) throws(ModelError) -> SafeTensors {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .file("cannot read model file \(path)")
    }
    return try decode(data, name: path)
  }

  public static func decode(_ data: Data, name: String) throws(ModelError) -> SafeTensors {
    func bad(_ m: String) -> ModelError { .file("\(name): not a valid model file (\(m))") }
    guard data.count >= 8 else { throw bad("too short") }
    let n = data.prefix(8).enumerated().reduce(UInt64(0)) {
      $0 | UInt64($1.element) << (8 * UInt64($1.offset))
    }
    guard n <= UInt64(data.count - 8) else { throw bad("header length \(n) exceeds file size") }
    let headerData = data.subdata(in: 8..<(8 + Int(n)))
    guard let obj = try? JSONSerialization.jsonObject(with: headerData),
      let header = obj as? [String: Any]
    else { throw bad("header is not a JSON object") }
    var st = SafeTensors()
    if let m = header["__metadata__"] {
      guard let md = m as? [String: String] else { throw bad("metadata is not a string map") }
      st.metadata = md
    }
    let base = 8 + Int(n)
    let body = data.count - base
    for (key, value) in header where key != "__metadata__" {
      guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
        let shapeAny = entry["shape"] as? [Any], let offsAny = entry["data_offsets"] as? [Any],
        offsAny.count == 2
      else { throw bad("entry '\(key)' is malformed") }
      let shape = shapeAny.compactMap { ($0 as? NSNumber)?.intValue }
      let offs = offsAny.compactMap { ($0 as? NSNumber)?.intValue }
      guard shape.count == shapeAny.count, offs.count == 2, shape.allSatisfy({ $0 >= 0 }) else {
        throw bad("entry '\(key)' has a bad shape or offsets")
      }
      let count = shape.reduce(1) {
        $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1
      }
      let width: Int
      switch dtype {
      case "F32": width = 4
      case "F16": width = 2
      default: throw bad("tensor '\(key)' has unsupported dtype \(dtype)")
      }
      guard count < Int.max / 4, offs[0] >= 0, offs[1] <= body, offs[1] - offs[0] == count * width
      else { throw bad("tensor '\(key)' data does not match its shape \(shape)") }
      var storage = [Float](repeating: 0, count: count)
      data.withUnsafeBytes { raw in
        let p = raw.baseAddress! + base + offs[0]
        if width == 4 {
          for i in 0..<count {
            var bits: UInt32 = 0
            memcpy(&bits, p + 4 * i, 4)
            storage[i] = Float(bitPattern: UInt32(littleEndian: bits))
          }
        } else {
          for i in 0..<count {
            var bits: UInt16 = 0
            memcpy(&bits, p + 2 * i, 2)
            storage[i] = Float(Float16(bitPattern: UInt16(littleEndian: bits)))
          }
        }
      }
      st.tensors[key] = Tensor(shape: shape, storage: storage)
    }
    return st
  }
}
