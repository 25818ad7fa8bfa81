import Engine

/// Weight initialisers, all drawing from an injected `SeededRandom` in storage order.
public enum Initializer {
  /// True while a network is built only to receive a model file's weights: `orthogonal`
  /// then draws its normals as usual (the generator ends where it would) but skips the
  /// orthonormalisation, which is most of the time `gvae sample` takes to load the shipped
  /// model.
  @TaskLocal public static var weightsFollow = false

  /// Glorot (Xavier) uniform: `U(-l, l)` with `l = sqrt(6 / (fanIn + fanOut))`
  /// (Glorot & Bengio 2010; Keras' default kernel initialiser).
  public static func glorotUniform(
    _ shape: [Int], fanIn: Int, fanOut: Int, rng: inout SeededRandom
  ) -> Tensor {
    let limit = (6 / Float(fanIn + fanOut)).squareRoot()
    return Tensor(randomUniform: shape, low: -limit, high: limit, rng: &rng)
  }

  /// He (Kaiming) normal: `N(0, 2 / fanIn)` (He et al. 2015), for ReLU layers.
  public static func heNormal(_ shape: [Int], fanIn: Int, rng: inout SeededRandom) -> Tensor {
    Tensor(randomNormal: shape, std: (2 / Float(fanIn)).squareRoot(), rng: &rng)
  }

  /// Uniform `U(-1/sqrt(fanIn), 1/sqrt(fanIn))`: PyTorch's default for biases and GRUs.
  public static func uniformFanIn(_ shape: [Int], fanIn: Int, rng: inout SeededRandom) -> Tensor {
    let limit = 1 / Float(max(fanIn, 1)).squareRoot()
    return Tensor(randomUniform: shape, low: -limit, high: limit, rng: &rng)
  }

  /// A [rows, cols] matrix with orthonormal columns (rows ≥ cols) or rows (rows < cols),
  /// times `gain` (Saxe et al. 2014; Keras' default recurrent initialiser).
  ///
  /// Modified Gram–Schmidt on a seeded standard-normal matrix, which equals the Q of its QR
  /// decomposition with a positive diagonal in R, so the result is Haar-distributed.
  public static func orthogonal(
    rows: Int, cols: Int, gain: Float = 1, rng: inout SeededRandom
  ) -> Tensor {
    // Orthonormalise the `count` vectors of length `length` (rows of `v`).
    let count = min(rows, cols)
    let length = max(rows, cols)
    var v = [Double](repeating: 0, count: count * length)
    for i in 0..<v.count { v[i] = Double(rng.nextNormal()) }
    if weightsFollow { return Tensor(zeros: [rows, cols]) }
    for i in 0..<count {
      for j in 0..<i {
        var dot = 0.0
        for p in 0..<length { dot += v[i * length + p] * v[j * length + p] }
        for p in 0..<length { v[i * length + p] -= dot * v[j * length + p] }
      }
      var norm = 0.0
      for p in 0..<length { norm += v[i * length + p] * v[i * length + p] }
      norm = norm.squareRoot()
      if norm < 1e-12 { norm = 1 }  // measure-zero degenerate draw
      for p in 0..<length { v[i * length + p] /= norm }
    }
    var out = Tensor(zeros: [rows, cols])
    for i in 0..<count {
      for p in 0..<length {
        let value = Float(v[i * length + p]) * gain
        if rows >= cols {
          out.storage[p * cols + i] = value  // vector i is column i
        } else {
          out.storage[i * cols + p] = value  // vector i is row i
        }
      }
    }
    return out
  }
}
