// PNG output (8-bit greyscale, zlib deflate) and grids of images.
import Foundation

public enum PNG {
  /// The PNG file of a `width × height` 8-bit grey image (`pixels` row-major).
  public static func encodeGray(width: Int, height: Int, pixels: [UInt8]) throws -> [UInt8] {
    precondition(width > 0 && height > 0 && pixels.count == width * height)
    var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    func be32(_ v: Int) -> [UInt8] {
      [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]
    }
    func chunk(_ type: String, _ data: [UInt8]) {
      let typed = Array(type.utf8) + data
      out += be32(data.count) + typed + be32(Int(Zlib.crc32(typed)))
    }
    // IHDR: size, bit depth 8, colour type 0 (grey), deflate, adaptive filters, no interlace.
    chunk("IHDR", be32(width) + be32(height) + [8, 0, 0, 0, 0])
    // Each row starts with filter byte 0 (none): grey digit images compress well as they are.
    var raw = [UInt8]()
    raw.reserveCapacity((width + 1) * height)
    for y in 0..<height {
      raw.append(0)
      raw += pixels[(y * width)..<((y + 1) * width)]
    }
    chunk("IDAT", try Zlib.deflate(raw, level: 9))
    chunk("IEND", [])
    return out
  }

  /// Writes a grey PNG of values in [0, 1] (clamped), atomically.
  public static func write(
    path: String, width: Int, height: Int, values: [Float]
  ) throws {
    let bytes = values.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
    let data = Data(try encodeGray(width: width, height: height, pixels: bytes))
    try data.write(to: URL(fileURLWithPath: path), options: .atomic)
  }
}

/// Images tiled row by row with a border between them.
public struct ImageGrid {
  public var width: Int
  public var height: Int
  public var values: [Float]

  /// `count` images of `h × w` (consecutive in `images`) in `columns` columns, `border`
  /// pixels of `background` between and around them.
  public init(
    images: [Float], count: Int, height h: Int, width w: Int, columns: Int, border: Int = 1,
    background: Float = 0.5
  ) {
    precondition(count > 0 && columns > 0 && images.count == count * h * w)
    let rows = (count + columns - 1) / columns
    let cols = min(columns, count)
    width = cols * (w + border) + border
    height = rows * (h + border) + border
    values = [Float](repeating: background, count: width * height)
    for k in 0..<count {
      let top = border + (k / cols) * (h + border)
      let left = border + (k % cols) * (w + border)
      for y in 0..<h {
        for x in 0..<w { values[(top + y) * width + left + x] = images[k * h * w + y * w + x] }
      }
    }
  }

  public func writePNG(_ path: String) throws {
    try PNG.write(path: path, width: width, height: height, values: values)
  }
}
