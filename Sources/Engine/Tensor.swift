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
