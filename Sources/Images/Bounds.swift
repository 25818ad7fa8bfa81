// The training objectives (ELBO, IWAE bound) and the importance-weighted log-likelihood
// estimate, on binarised images.
import Engine
import Foundation
import NN

/// A bound on a batch: the loss to minimise (its negative, averaged over images) and sums
/// over images for logs.
public struct BatchBound {
  public var loss: Var
  /// Σ over images of the bound (nats).
  public var boundSum: Double
  /// Σ over images of −E log p(x|z) (the reconstruction term, one-sample estimate).
  public var reconstructionSum: Double
  /// Σ over images of KL(q(z|x) ‖ p(z)) (analytic; 0 for the IWAE bound, which has none).
  public var klSum: Double
  public var images: Int
}

extension ImageVAE {
  /// The ELBO with one reparameterised sample and the analytic KL (Kingma & Welling 2014):
  /// `E_q log p(x|z) − KL(q(z|x) ‖ N(0, I))`; `loss` is its negative mean over the batch.
  public func elbo(_ x: Tensor, tape: Tape, rng: inout SeededRandom) -> BatchBound {
    let eps = Tensor(randomNormal: [x.shape[0], configuration.latentSize], rng: &rng)
    return elbo(x, noise: eps, tape: tape)
  }

  /// The ELBO with the given noise ε ([N, latent]); `loss` is the negative bound summed over
  /// the batch and divided by `normalizer` (default N: a data-parallel shard divides by the
  /// global batch, so the ranks' gradients sum to the global batch's).
  public func elbo(_ x: Tensor, noise: Tensor, tape: Tape, normalizer: Int? = nil) -> BatchBound {
    let n = x.shape[0]
    let (mean, logVariance) = encode(tape.constant(x), tape: tape)
    let z = mean + exp(logVariance * 0.5) * tape.constant(noise)
    let ll = bernoulliLogLikelihood(logits: decodeLogits(z, tape: tape), targets: x)
    let kl = gaussianKLDivergence(mean: mean, logVariance: logVariance)  // mean over batch
    let loss = (kl * Float(n) - sum(ll)) * (1 / Float(max(normalizer ?? n, 1)))
    let llSum = ll.value.storage.reduce(0.0) { $0 + Double($1) }
    let klSum = Double(kl.value.scalar) * Double(n)
    return BatchBound(
      loss: loss, boundSum: llSum - klSum, reconstructionSum: -llSum, klSum: klSum, images: n)
  }

  /// Log importance weights `log p(x, z_k) − log q(z_k|x)` ([k, N]) for `k` reparameterised
  /// samples per image, and the per-sample reconstruction log-likelihoods.
  func logWeights(_ x: Tensor, samples k: Int, tape: Tape, rng: inout SeededRandom) -> (
    logWeights: Var, logLikelihood: Var
  ) {
    logWeights(x, noise: Tensor(randomNormal: [k, x.shape[0], configuration.latentSize], rng: &rng), tape: tape)
  }

  /// The log weights for the given noise ε ([k, N, latent]).
  func logWeights(_ x: Tensor, noise: Tensor, tape: Tape) -> (logWeights: Var, logLikelihood: Var) {
    let k = noise.shape[0]
    let n = x.shape[0]
    let L = configuration.latentSize
    let (mean, logVariance) = encode(tape.constant(x), tape: tape)
    let mu = mean.reshaped([1, n, L])
    let lv = logVariance.reshaped([1, n, L])
    let z = mu + exp(lv * 0.5) * tape.constant(noise)  // [k, n, L]
    let logits = decodeLogits(z.reshaped([k * n, L]), tape: tape)
    // Row s·n + i of the logits is sample s of image i: the targets repeat every n rows.
    let ll = bernoulliLogLikelihood(logits: logits, targets: x).reshaped([k, n])
    let logPrior = standardNormalLogDensity(z)
    let logPosterior = diagonalGaussianLogDensity(z, mean: mu, logVariance: lv)
    return (ll + logPrior - logPosterior, ll)
  }

  /// The IWAE bound with `k` samples (Burda et al. 2016): `log (1/k) Σ_k p(x, z_k) / q(z_k|x)`;
  /// k = 1 is the ELBO with a sampled KL. `loss` is its negative mean over the batch.
  public func iwaeBound(_ x: Tensor, samples k: Int, tape: Tape, rng: inout SeededRandom)
    -> BatchBound
  {
    iwaeBound(x, noise: Tensor(randomNormal: [k, x.shape[0], configuration.latentSize], rng: &rng), tape: tape)
  }

  /// The IWAE bound with the given noise ε ([k, N, latent]); `normalizer` as for `elbo`.
  public func iwaeBound(_ x: Tensor, noise: Tensor, tape: Tape, normalizer: Int? = nil) -> BatchBound {
    let n = x.shape[0]
    let k = noise.shape[0]
    let (w, ll) = logWeights(x, noise: noise, tape: tape)
    let bound = logSumExp(w, axis: 0) - Float(log(Double(k)))  // [n]
    let loss = sum(bound) * (-1 / Float(max(normalizer ?? n, 1)))
    let boundSum = bound.value.storage.reduce(0.0) { $0 + Double($1) }
    let llSum = ll.value.storage.reduce(0.0) { $0 + Double($1) } / Double(k)
    return BatchBound(loss: loss, boundSum: boundSum, reconstructionSum: -llSum, klSum: 0, images: n)
  }

  /// The noise shape of `bound` for `n` images: [n, latent] for the ELBO, [k, n, latent].
  public func noiseShape(images n: Int, samples k: Int) -> [Int] {
    k <= 1 ? [n, configuration.latentSize] : [k, n, configuration.latentSize]
  }

  /// `bound` with the given noise (shape `noiseShape`).
  public func bound(_ x: Tensor, noise: Tensor, tape: Tape, normalizer: Int? = nil) -> BatchBound {
    noise.shape.count == 2
      ? elbo(x, noise: noise, tape: tape, normalizer: normalizer)
      : iwaeBound(x, noise: noise, tape: tape, normalizer: normalizer)
  }

  /// The training objective: the ELBO for `k == 1`, the IWAE bound otherwise.
  public func bound(_ x: Tensor, samples k: Int, tape: Tape, rng: inout SeededRandom) -> BatchBound {
    k <= 1 ? elbo(x, tape: tape, rng: &rng) : iwaeBound(x, samples: k, tape: tape, rng: &rng)
  }
}

/// Test-set figures per image, in nats.
public struct LikelihoodEstimate: Sendable, Equatable {
  public var images: Int
  /// Mean over images of the ELBO, estimated by the mean log weight of the k samples.
  public var elbo: Double
  /// Mean over images of log (1/k) Σ w_k: the importance-weighted estimate of log p(x).
  public var logLikelihood: Double
  public var samples: Int
}

extension ImageVAE {
  /// The ELBO and the importance-weighted log p(x) estimate with `k` samples per image.
  /// Images go `imageBatch` at a time and samples in chunks of at most `rowBudget` decoder
  /// rows, with a running log-sum-exp per image, so memory does not grow with k.
  public func estimateLogLikelihood(
    _ images: ImageSet, samples k: Int, seed: UInt64 = 0, imageBatch: Int = 100,
    rowBudget: Int = 4096, progress: ((Int) -> Void)? = nil
  ) -> LikelihoodEstimate {
    precondition(k >= 1 && images.pixelsPerImage == configuration.pixels)
    var rng = SeededRandom(seed: seed)
    var elboSum = 0.0
    var llSum = 0.0
    var start = 0
    while start < images.count {
      let rows = Array(start..<min(images.count, start + max(1, imageBatch)))
      let x = images.batch(rows)
      let n = rows.count
      let chunk = max(1, min(k, rowBudget / max(n, 1)))
      // Running log-sum-exp per image: max so far and Σ exp(w − max).
      var maxW = [Double](repeating: -.infinity, count: n)
      var sumExp = [Double](repeating: 0, count: n)
      var sumW = [Double](repeating: 0, count: n)
      var done = 0
      while done < k {
        let s = min(chunk, k - done)
        let tape = Tape(recording: false)
        let w = logWeights(x, samples: s, tape: tape, rng: &rng).logWeights.value  // [s, n]
        for j in 0..<s {
          for i in 0..<n {
            let v = Double(w.storage[j * n + i])
            sumW[i] += v
            if v > maxW[i] {
              sumExp[i] = sumExp[i] * Foundation.exp(maxW[i] - v) + 1
              maxW[i] = v
            } else {
              sumExp[i] += Foundation.exp(v - maxW[i])
            }
          }
        }
        done += s
      }
      for i in 0..<n {
        elboSum += sumW[i] / Double(k)
        llSum += maxW[i] + Foundation.log(sumExp[i]) - Foundation.log(Double(k))
      }
      start += n
      progress?(start)
    }
    let count = Double(max(images.count, 1))
    return LikelihoodEstimate(
      images: images.count, elbo: elboSum / count, logLikelihood: llSum / count, samples: k)
  }
}
