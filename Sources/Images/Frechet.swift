// Sample-quality measures without a downloaded Inception network: the Fréchet distance of
// classifier features (FID's formula, Heusel et al. 2017), the inception-style score
// exp(E KL(p(y|x) ‖ p(y))) (Salimans et al. 2016) and the predicted-label histogram.
import Foundation

/// Mean and covariance (divisor n − 1, as numpy's `cov`) of `count` feature rows.
public struct FeatureStatistics: Sendable, Equatable {
  public var dimension: Int
  public var count: Int
  public var mean: [Double]
  /// Row-major [dimension, dimension].
  public var covariance: [Double]

  public init(features: [Float], count: Int) {
    precondition(count >= 2 && features.count % count == 0, "feature statistics need at least 2 rows")
    let d = features.count / count
    dimension = d
    self.count = count
    var m = [Double](repeating: 0, count: d)
    for i in 0..<count { for j in 0..<d { m[j] += Double(features[i * d + j]) } }
    for j in 0..<d { m[j] /= Double(count) }
    var c = [Double](repeating: 0, count: d * d)
    var row = [Double](repeating: 0, count: d)
    for i in 0..<count {
      for j in 0..<d { row[j] = Double(features[i * d + j]) - m[j] }
      for a in 0..<d {
        let ra = row[a]
        if ra == 0 { continue }
        for b in a..<d { c[a * d + b] += ra * row[b] }
      }
    }
    for a in 0..<d {
      for b in a..<d {
        let v = c[a * d + b] / Double(count - 1)
        c[a * d + b] = v
        c[b * d + a] = v
      }
    }
    mean = m
    covariance = c
  }
}

/// Eigenvalues and eigenvectors of a symmetric matrix by cyclic Jacobi rotations in Double.
public enum SymmetricEigen {
  /// `a` row-major [n, n] (symmetric). Returns the eigenvalues and the eigenvectors as the
  /// columns of a row-major [n, n] matrix: a = V·diag(λ)·Vᵀ.
  public static func decompose(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
    precondition(a.count == n * n)
    var m = a
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    var scale = 0.0
    for x in a { scale = max(scale, abs(x)) }
    if scale == 0 || n == 1 { return ((0..<n).map { m[$0 * n + $0] }, v) }
    for _ in 0..<100 {
      var off = 0.0
      for p in 0..<n { for q in (p + 1)..<n { off += m[p * n + q] * m[p * n + q] } }
      if off.squareRoot() <= 1e-15 * scale * Double(n) { break }
      for p in 0..<(n - 1) {
        for q in (p + 1)..<n {
          let apq = m[p * n + q]
          if abs(apq) < 1e-300 { continue }
          let app = m[p * n + p]
          let aqq = m[q * n + q]
          // The rotation that zeroes (p, q) (Golub & Van Loan, Algorithm 8.5.1).
          let tau = (aqq - app) / (2 * apq)
          let t = (tau >= 0 ? 1 : -1) / (abs(tau) + (1 + tau * tau).squareRoot())
          let c = 1 / (1 + t * t).squareRoot()
          let s = t * c
          for k in 0..<n {
            let mkp = m[k * n + p]
            let mkq = m[k * n + q]
            m[k * n + p] = c * mkp - s * mkq
            m[k * n + q] = s * mkp + c * mkq
          }
          for k in 0..<n {
            let mpk = m[p * n + k]
            let mqk = m[q * n + k]
            m[p * n + k] = c * mpk - s * mqk
            m[q * n + k] = s * mpk + c * mqk
          }
          for k in 0..<n {
            let vkp = v[k * n + p]
            let vkq = v[k * n + q]
            v[k * n + p] = c * vkp - s * vkq
            v[k * n + q] = s * vkp + c * vkq
          }
        }
      }
    }
    return ((0..<n).map { m[$0 * n + $0] }, v)
  }

  /// The symmetric positive semi-definite square root V·diag(√max(λ, 0))·Vᵀ.
  public static func squareRoot(_ a: [Double], n: Int) -> [Double] {
    let (l, v) = decompose(a, n: n)
    var out = [Double](repeating: 0, count: n * n)
    for k in 0..<n {
      let r = max(l[k], 0).squareRoot()
      if r == 0 { continue }
      for i in 0..<n {
        let vik = v[i * n + k] * r
        if vik == 0 { continue }
        for j in 0..<n { out[i * n + j] += vik * v[j * n + k] }
      }
    }
    return out
  }
}

public enum SampleQuality {
  /// ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), with tr((Σ₁Σ₂)^½) = Σ √λ(Σ₁^½ Σ₂ Σ₁^½): the
  /// inner matrix is symmetric, so two symmetric eigendecompositions suffice.
  public static func frechetDistance(_ a: FeatureStatistics, _ b: FeatureStatistics) -> Double {
    precondition(a.dimension == b.dimension, "feature dimensions \(a.dimension) vs \(b.dimension)")
    let n = a.dimension
    var d2 = 0.0
    for i in 0..<n { d2 += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]) }
    var trace = 0.0
    for i in 0..<n { trace += a.covariance[i * n + i] + b.covariance[i * n + i] }
    let r = SymmetricEigen.squareRoot(a.covariance, n: n)
    let inner = multiply(multiply(r, b.covariance, n), r, n)
    var sym = inner
    for i in 0..<n { for j in 0..<n { sym[i * n + j] = 0.5 * (inner[i * n + j] + inner[j * n + i]) } }
    let l = SymmetricEigen.decompose(sym, n: n).values
    let traceSqrt = l.reduce(0) { $0 + max($1, 0).squareRoot() }
    return max(0, d2 + trace - 2 * traceSqrt)
  }

  static func multiply(_ x: [Double], _ y: [Double], _ n: Int) -> [Double] {
    var out = [Double](repeating: 0, count: n * n)
    x.withUnsafeBufferPointer { px in
      y.withUnsafeBufferPointer { py in
        out.withUnsafeMutableBufferPointer { po in
          for i in 0..<n {
            for k in 0..<n {
              let a = px[i * n + k]
              if a == 0 { continue }
              for j in 0..<n { po[i * n + j] += a * py[k * n + j] }
            }
          }
        }
      }
    }
    return out
  }

  /// exp(mean over x of KL(p(y|x) ‖ p(y))), p(y) the mean of p(y|x): 1 when every image
  /// gets the same distribution, the number of classes at best (confident and balanced).
  public static func inceptionScore(probabilities p: [Float], classes k: Int) -> Double {
    precondition(k > 0 && p.count % k == 0 && !p.isEmpty)
    let n = p.count / k
    var marginal = [Double](repeating: 0, count: k)
    for i in 0..<n { for c in 0..<k { marginal[c] += Double(p[i * k + c]) } }
    for c in 0..<k { marginal[c] /= Double(n) }
    var kl = 0.0
    for i in 0..<n {
      for c in 0..<k {
        let q = Double(p[i * k + c])
        if q > 0 && marginal[c] > 0 { kl += q * (log(q) - log(marginal[c])) }
      }
    }
    return exp(kl / Double(n))
  }

  /// Counts of each predicted class.
  public static func labelHistogram(_ predictions: [Int], classes k: Int) -> [Int] {
    var h = [Int](repeating: 0, count: k)
    for p in predictions where p >= 0 && p < k { h[p] += 1 }
    return h
  }
}

/// The scores of a set of images against a reference set under one classifier.
public struct SampleScore: Codable, Sendable, Equatable {
  public var images: Int
  public var referenceImages: Int?
  public var frechetDistance: Double?
  public var inceptionScore: Double
  public var labelHistogram: [Int]
  /// Fraction of images whose most probable class has p ≥ 0.9.
  public var confident: Double
}

extension ImageClassifier {
  /// Inception-style score, label histogram and (with a reference set) the Fréchet distance
  /// of the penultimate features.
  public func score(_ images: [Float], count: Int, reference: ImageSet? = nil) -> SampleScore {
    let k = configuration.classes
    let p = probabilities(images, count: count)
    var predictions: [Int] = []
    var confident = 0
    for i in 0..<count {
      var best = 0
      for c in 1..<k where p[i * k + c] > p[i * k + best] { best = c }
      predictions.append(best)
      if p[i * k + best] >= 0.9 { confident += 1 }
    }
    var fd: Double? = nil
    if let reference, reference.count >= 2, count >= 2 {
      let a = FeatureStatistics(features: features(images, count: count), count: count)
      let b = FeatureStatistics(features: features(reference.pixels, count: reference.count), count: reference.count)
      fd = SampleQuality.frechetDistance(a, b)
    }
    return SampleScore(
      images: count, referenceImages: reference?.count, frechetDistance: fd,
      inceptionScore: SampleQuality.inceptionScore(probabilities: p, classes: k),
      labelHistogram: SampleQuality.labelHistogram(predictions, classes: k),
      confident: Double(confident) / Double(max(count, 1)))
  }
}
