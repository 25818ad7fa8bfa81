import Foundation
import Images
import Testing

/// The chunks of a PNG file, each CRC checked.
func pngChunks(_ b: [UInt8]) throws -> [(type: String, data: [UInt8])] {
  #expect(Array(b.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
  var out: [(String, [UInt8])] = []
  var o = 8
  func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
  while o + 12 <= b.count {
    let n = be32(o)
    let typed = Array(b[(o + 4)..<(o + 8 + n)])
    #expect(UInt32(be32(o + 8 + n)) == Zlib.crc32(typed), "CRC of chunk at \(o)")
    out.append((String(decoding: typed.prefix(4), as: UTF8.self), Array(typed.dropFirst(4))))
    o += 12 + n
  }
  #expect(o == b.count)
  return out
}

@Suite struct PNGTests {
  @Test func writtenPNGInflatesBackToThePixels() throws {
    let (w, h) = (37, 5)
    let pixels = (0..<(w * h)).map { UInt8(($0 * 37 + $0 / w) % 256) }
    let file = try PNG.encodeGray(width: w, height: h, pixels: pixels)
    let chunks = try pngChunks(file)
    #expect(chunks.map(\.type) == ["IHDR", "IDAT", "IEND"])
    #expect(chunks[0].data == [0, 0, 0, 37, 0, 0, 0, 5, 8, 0, 0, 0, 0])
    let raw = try Zlib.inflate(chunks[1].data)
    #expect(raw.count == (w + 1) * h)
    var decoded: [UInt8] = []
    for y in 0..<h {
      #expect(raw[y * (w + 1)] == 0)  // filter: none
      decoded += raw[(y * (w + 1) + 1)..<((y + 1) * (w + 1))]
    }
    #expect(decoded == pixels)
  }

  @Test func gridPlacesImagesWithBorders() throws {
    // Three 2×2 images in two columns: 2 rows, border 1 → 7×7.
    let images: [Float] = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1]
    let g = ImageGrid(images: images, count: 3, height: 2, width: 2, columns: 2, border: 1, background: 0.5)
    #expect(g.width == 7 && g.height == 7)
    #expect(g.values[1 * 7 + 1] == 1 && g.values[1 * 7 + 4] == 0 && g.values[4 * 7 + 1] == 1)
    #expect(g.values[4 * 7 + 2] == 0 && g.values[0] == 0.5 && g.values[4 * 7 + 4] == 0.5)
    let dir = try scratchDirectory()
    let path = dir.appendingPathComponent("g.png").path
    try g.writePNG(path)
    let chunks = try pngChunks([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    let raw = try Zlib.inflate(chunks[1].data)
    #expect(raw[1 * 8 + 2] == 255 && raw[1 * 8 + 5] == 0 && raw[1] == 128)
  }
}
