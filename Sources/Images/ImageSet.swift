// Grey images in memory and the errors of reading them.
import Engine

/// `count` grey images of `height × width`, pixels in [0, 1] row-major, image after image;
/// labels when the data set has them.
public struct ImageSet: Sendable, Equatable {
  public let height: Int
  public let width: Int
  public var pixels: [Float]
  public var labels: [Int]?

  public init(height: Int, width: Int, pixels: [Float], labels: [Int]? = nil) {
    precondition(height > 0 && width > 0 && pixels.count % (height * width) == 0)
    precondition(labels == nil || labels!.count == pixels.count / (height * width))
    self.height = height
    self.width = width
    self.pixels = pixels
    self.labels = labels
  }

  public var pixelsPerImage: Int { height * width }
  public var count: Int { pixels.count / pixelsPerImage }

  /// The images at `indices`, in that order.
  public func subset(_ indices: [Int]) -> ImageSet {
    let d = pixelsPerImage
    var out = [Float]()
    out.reserveCapacity(indices.count * d)
    for i in indices { out.append(contentsOf: pixels[(i * d)..<((i + 1) * d)]) }
    return ImageSet(height: height, width: width, pixels: out, labels: labels.map { l in indices.map { l[$0] } })
  }

  /// Images `range` as a [n, height·width] tensor.
  public func batch(_ indices: [Int]) -> Tensor {
    let d = pixelsPerImage
    return Tensor(shape: [indices.count, d]) { out in
      for (k, i) in indices.enumerated() {
        pixels.withUnsafeBufferPointer {
          (out.baseAddress! + k * d).update(from: $0.baseAddress! + i * d, count: d)
        }
      }
    }
  }
}

/// Why a data file could not be read: every case names the file, where, and what.
public enum ImageDataError: Error, CustomStringConvertible, Equatable {
  case unreadable(path: String, String)
  /// The first bytes are not the format's magic number.
  case badMagic(path: String, expected: String, found: String)
  /// The file ends before the data its header promises.
  case truncated(path: String, needed: Int, available: Int)
  /// A header field or a row is malformed (`at` says where).
  case malformed(path: String, at: String, String)
  /// Two files (or a header and the data) disagree on a count or shape.
  case mismatch(path: String, String)
  case unsupported(path: String, String)
  /// A directory with none of the known layouts.
  case unknownLayout(path: String, String)

  public var description: String {
    switch self {
    case .unreadable(let p, let why): return "\(p): cannot read: \(why)"
    case .badMagic(let p, let e, let f): return "\(p): bad magic number: expected \(e), found \(f)"
    case .truncated(let p, let n, let a):
      return "\(p): truncated file: the header promises \(n) bytes, the file has \(a)"
    case .malformed(let p, let at, let why): return "\(p): \(at): \(why)"
    case .mismatch(let p, let why): return "\(p): \(why)"
    case .unsupported(let p, let why): return "\(p): unsupported: \(why)"
    case .unknownLayout(let p, let why): return "\(p): unknown data layout: \(why)"
    }
  }
}

/// `a · b` or nil on overflow: header dimensions must not wrap before they are checked.
@inlinable
func checkedProduct(_ values: [Int]) -> Int? {
  var p = 1
  for v in values {
    guard v >= 0 else { return nil }
    let (r, o) = p.multipliedReportingOverflow(by: v)
    if o { return nil }
    p = r
  }
  return p
}
