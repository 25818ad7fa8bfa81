/// A dense Float32 tensor: contiguous row-major storage with value semantics.
///
/// `Array` supplies copy-on-write, so copies are cheap until one is mutated.
/// Shape mismatches between internal operations are bugs and trap with both shapes
/// named; shapes that come from outside (checkpoints, files) are checked by callers
/// and thrown as errors.
public struct Tensor: Sendable, Equatable, CustomStringConvertible {
  public private(set) var shape: [Int]
  public var storage: [Float]

  public init(shape: [Int], storage: [Float]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
    precondition(
      shape.reduce(1, *) == storage.count,
      "shape \(shape) needs \(shape.reduce(1, *)) elements, storage has \(storage.count)")
    self.shape = shape
    self.storage = storage
  }

  public init(zeros shape: [Int]) {
    self.init(shape: shape, storage: [Float](repeating: 0, count: shape.reduce(1, *)))
  }

  public init(repeating value: Float, shape: [Int]) {
    self.init(shape: shape, storage: [Float](repeating: value, count: shape.reduce(1, *)))
  }

  /// A rank-0 tensor holding one value.
  public init(scalar: Float) { self.init(shape: [], storage: [scalar]) }

  public var count: Int { storage.count }
  public var rank: Int { shape.count }

  /// The single value of a tensor with one element.
  public var scalar: Float {
    precondition(storage.count == 1, "scalar of a tensor with shape \(shape)")
    return storage[0]
  }

  /// The same elements under a new shape with the same element count; one dimension may be -1.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    var s = newShape
    if let i = s.firstIndex(of: -1) {
      let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
      precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
      s[i] = count / known
    }
    return Tensor(shape: s, storage: storage)
  }

  public var description: String {
    let head = storage.prefix(8).map { "\($0)" }.joined(separator: ", ")
    return "Tensor(shape: \(shape), [\(head)\(count > 8 ? ", …" : "")])"
  }
}

/// Row-major strides of a shape.
@inlinable
public func strides(of shape: [Int]) -> [Int] {
  var s = [Int](repeating: 1, count: shape.count)
  var acc = 1
  for i in stride(from: shape.count - 1, through: 0, by: -1) {
    s[i] = acc
    acc *= shape[i]
  }
  return s
}

extension Tensor {
  /// A tensor whose storage `initializer` fills completely (no zero fill first).
  @inlinable
  public init(
    shape: [Int], unsafeUninitialized initializer: (UnsafeMutableBufferPointer<Float>) -> Void
  ) {
    let n = shape.reduce(1, *)
    let data = [Float](unsafeUninitializedCapacity: n) { buffer, count in
      initializer(buffer)
      count = n
    }
    self.init(shape: shape, storage: data)
  }

  /// `f` applied to every element.
  @inlinable
  public func map(_ f: (Float) -> Float) -> Tensor {
    var out = self
    out.storage.withUnsafeMutableBufferPointer { p in
      for i in 0..<p.count { p[i] = f(p[i]) }
    }
    return out
  }

  /// Every element times `s`.
  @inlinable
  public func scaled(by s: Float) -> Tensor { map { $0 * s } }

  /// `self += alpha · other` in place (same shapes): the SGD step and gradient accumulation.
  @inlinable
  public mutating func add(_ other: Tensor, scaledBy alpha: Float = 1) {
    precondition(shape == other.shape, "add \(other.shape) into \(shape)")
    storage.withUnsafeMutableBufferPointer { t in
      other.storage.withUnsafeBufferPointer { s in
        if alpha == 1 {
          for i in 0..<t.count { t[i] += s[i] }
        } else {
          for i in 0..<t.count { t[i] += alpha * s[i] }
        }
      }
    }
  }

  /// Elementwise `lhs += rhs` (same shapes).
  @inlinable
  public static func += (lhs: inout Tensor, rhs: Tensor) { lhs.add(rhs) }
}

/// Splits `shape` around `axis`: the product of the dimensions before it, its size, and
/// the product after it (the stride of the axis).
@usableFromInline
func axisSplit(_ shape: [Int], _ axis: Int) -> (outer: Int, n: Int, inner: Int) {
  (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
}

/// `axis` in `0..<rank`, counting from the end when negative; traps naming the shape.
@usableFromInline
func normalizedAxis(_ axis: Int, _ shape: [Int], _ what: StaticString) -> Int {
  let a = axis < 0 ? axis + shape.count : axis
  precondition(a >= 0 && a < shape.count, "\(what): axis \(axis) out of range for shape \(shape)")
  return a
}
