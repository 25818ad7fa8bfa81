// zlib through the system library: gzip/zlib inflate for data files, zlib deflate and
// CRC-32 for PNG.
import CZlib
import Foundation

/// Why a compressed stream could not be inflated or deflated.
public struct CompressionError: Error, CustomStringConvertible, Equatable {
  public var message: String
  public var description: String { message }
}

public enum Zlib {
  /// Inflates a gzip stream (one or more members, as `gzip -dc` does) or a zlib stream; the
  /// header decides which. At most `limit` output bytes, so a small file cannot claim memory
  /// without bound.
  public static func inflate(_ input: [UInt8], limit: Int = 1 << 32) throws -> [UInt8] {
    guard !input.isEmpty else { throw CompressionError(message: "empty compressed stream") }
    var out = [UInt8]()
    out.reserveCapacity(min(limit, max(1 << 16, input.count * 4)))
    var chunk = [UInt8](repeating: 0, count: 1 << 18)
    var offset = 0
    while offset < input.count {
      var stream = z_stream()
      // 15 + 32: zlib or gzip, detected from the header.
      guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
      else { throw CompressionError(message: "zlib: inflateInit failed") }
      defer { inflateEnd(&stream) }
      var status: Int32 = Z_OK
      try input.withUnsafeBufferPointer { src in
        stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress! + offset)
        stream.avail_in = uInt(min(input.count - offset, Int(UInt32.max)))
        repeat {
          try chunk.withUnsafeMutableBufferPointer { dst in
            stream.next_out = dst.baseAddress
            stream.avail_out = uInt(dst.count)
            status = CZlib.inflate(&stream, Z_NO_FLUSH)
            let produced = dst.count - Int(stream.avail_out)
            guard out.count + produced <= limit else {
              throw CompressionError(message: "inflated data exceeds the \(limit)-byte limit")
            }
            out.append(contentsOf: dst[0..<produced])
          }
          if status == Z_BUF_ERROR && stream.avail_in == 0 {
            throw CompressionError(
              message: "compressed stream is truncated (ends after \(out.count) inflated bytes)")
          }
          guard status == Z_OK || status == Z_STREAM_END else {
            let why = stream.msg.map { String(cString: $0) } ?? "error \(status)"
            throw CompressionError(
              message: "corrupt compressed stream at input byte \(offset + Int(stream.total_in)): \(why)")
          }
        } while status != Z_STREAM_END
      }
      offset += Int(stream.total_in)
      // gzip allows concatenated members; zero padding after the last member is ignored.
      if input[offset...].allSatisfy({ $0 == 0 }) { break }
    }
    return out
  }

  /// A zlib stream (RFC 1950) of `input`, as PNG's IDAT needs, or with `gzip` a gzip file.
  public static func deflate(_ input: [UInt8], level: Int32 = 6, gzip: Bool = false) throws -> [UInt8] {
    var stream = z_stream()
    // windowBits 15: zlib wrapper; 15 + 16: gzip wrapper. memLevel 8 is zlib's default.
    guard
      deflateInit2_(
        &stream, level, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
        Int32(MemoryLayout<z_stream>.size)) == Z_OK
    else { throw CompressionError(message: "zlib: deflateInit failed") }
    defer { deflateEnd(&stream) }
    let bound = Int(deflateBound(&stream, uLong(input.count)))
    var out = [UInt8](repeating: 0, count: bound)
    var status: Int32 = Z_OK
    input.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
        stream.avail_in = uInt(src.count)
        stream.next_out = dst.baseAddress
        stream.avail_out = uInt(dst.count)
        status = CZlib.deflate(&stream, Z_FINISH)
      }
    }
    // deflateBound guarantees one Z_FINISH call completes.
    guard status == Z_STREAM_END else {
      throw CompressionError(message: "zlib: deflate failed (\(status))")
    }
    out.removeSubrange(Int(stream.total_out)...)
    return out
  }

  /// CRC-32 (the PNG/gzip polynomial) of `bytes`, continuing from `crc`.
  public static func crc32(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBufferPointer {
      UInt32(CZlib.crc32(uLong(crc), $0.baseAddress, uInt($0.count)))
    }
  }

  /// Whether `bytes` start with the gzip magic number.
  public static func isGzip(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
  }
}
