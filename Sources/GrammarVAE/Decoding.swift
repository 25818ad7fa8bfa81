// Encoding strings to latents and batched masked decoding of latents to strings.
import CFG
import Engine

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How decoding chooses among the allowed productions (or characters) at each step.
public enum DecodingStrategy: Sendable, Equatable {
  /// The most probable allowed choice.
  case greedy
  /// Gumbel-max sampling from the masked softmax at a temperature (Kusner et al. 2017).
  case sample(temperature: Float)
}

/// One decoded output.
public enum DecodedString: Sendable, Equatable {
  case string(String)
  /// The derivation still had symbols to expand at the length limit (never truncated).
  case incomplete(steps: Int)

  public var string: String? {
    if case .string(let s) = self { return s }
    return nil
  }
}

extension VAEModel {
  /// Encoded one-hot inputs of strings; throws for the first string that has no encoding.
  func oneHot(_ strings: [String]) throws(ModelError) -> Tensor {
    var seq: [Int32] = []
    for (i, s) in strings.enumerated() {
      do {
        seq += try codec.encode(s).sequence
      } catch {
        throw .input("input \(i + 1) ('\(s)'): \(error.description)")
      }
    }
    return network.oneHot(seq, rows: strings.count)
  }

  /// Posterior means and log-variances `[n, Z]` of strings.
  /// - Throws: `ModelError.input` naming a string that does not encode.
  public func posterior(_ strings: [String], chunk: Int = 256) throws(ModelError) -> (
    mean: [Float], logVar: [Float]
  ) {
    var mu: [Float] = []
    var lv: [Float] = []
    var k = 0
    while k < strings.count {
      let part = Array(strings[k..<min(strings.count, k + chunk)])
      let (m, v) = network.posterior(oneHot: try oneHot(part))
      mu += m.storage
      lv += v.storage
      k += chunk
    }
    return (mu, lv)
  }

  /// Latent vectors of strings: means, or draws z = μ + ε·σ (ε ~ N(0, εstd²)) when stochastic.
  public func encode(
    _ strings: [String], stochastic: Bool, rng: inout SeededRandom
  ) throws(ModelError) -> [[Float]] {
    let (mu, lv) = try posterior(strings)
    let Z = configuration.latentSize
    return (0..<strings.count).map { i in
      (0..<Z).map { j in
        let k = i * Z + j
        guard stochastic else { return mu[k] }
        return mu[k] + configuration.epsilonStd * rng.nextNormal() * expf(0.5 * lv[k])
      }
    }
  }

  /// Decodes latents: `decodings` outputs per latent (row-major: latent, then decoding).
  ///
  /// Grammar models keep one derivation stack per output; each step masks the logits to the
  /// productions of the stack's top symbol, so every completed output is grammar-valid by
  /// construction; an output still unfinished after `steps` is `.incomplete`. Character models
  /// read characters up to the first padding character.
  ///
  /// With `lengthBudget` (grammar models) a production is also masked when the derivation
  /// could no longer finish within `steps` after choosing it (counting the fewest steps every
  /// pending symbol needs), so no output is ever incomplete; the cheapest production of the
  /// top symbol always fits, so the mask is never empty.
  ///
  /// With `constraint` (grammar models; implies the length budget) a production is allowed
  /// only when the constraint accepts some completion of the derivation after it within
  /// `steps` (see `ConstraintSearch`). Choices are tried best first (by logit, or by the
  /// Gumbel-perturbed logit when sampling), so the first allowed one is the masked argmax;
  /// after `constraintTries` refusals in one step the kept witness's production is taken.
  /// A plain decode that the constraint accepts is what the masked decoder returns too (each
  /// of its steps has a witness: its own rest), so every output is first decoded plainly and
  /// only the rejected ones are decoded again under the constraint (with fresh noise when
  /// sampling): the constraint never changes an output that was already valid.
  /// (`plainFirst: false` decodes every output under the constraint in one pass, for
  /// comparison: faster, but a refused search changes some outputs that were valid.)
  public func decode(
    latents: [[Float]], decodings: Int = 1, strategy: DecodingStrategy, rng: inout SeededRandom,
    lengthBudget: Bool = false, constraint: ConstraintSearch? = nil, constraintTries: Int = 2,
    plainFirst: Bool = true, chunk: Int = 512
  ) -> [DecodedString] {
    let constraint = configuration.kind == .grammar ? constraint : nil
    var out: [DecodedString] = []
    out.reserveCapacity(latents.count * decodings)
    let rowsPerChunk = max(1, chunk / max(decodings, 1))
    var k = 0
    while k < latents.count {
      let part = Array(latents[k..<min(latents.count, k + rowsPerChunk)])
      var outputs = decodeChunk(
        part, decodings: decodings, strategy: strategy,
        lengthBudget: lengthBudget || constraint != nil, constraint: plainFirst ? nil : constraint,
        tries: max(1, constraintTries), rng: &rng)
      if let constraint, plainFirst {
        let redo = outputs.indices.filter { !constraint.accepts(outputs[$0].productions) }
        if !redo.isEmpty {
          let again = decodeChunk(
            redo.map { part[$0 / decodings] }, decodings: 1, strategy: strategy,
            lengthBudget: true, constraint: constraint, tries: max(1, constraintTries), rng: &rng)
          for (i, o) in zip(redo, again) { outputs[i] = o }
        }
      }
      out += outputs.map(\.decoded)
      k += rowsPerChunk
    }
    return out
  }

  func decodeChunk(
    _ latents: [[Float]], decodings K: Int, strategy: DecodingStrategy, lengthBudget: Bool,
    constraint: ConstraintSearch?, tries: Int, rng: inout SeededRandom
  ) -> [(decoded: DecodedString, productions: [Int])] {
    let c = configuration
    let B = latents.count
    let N = B * K
    let V = c.vocabularySize
    let T = c.steps
    // The paper's decoder never sees its choices: one stream row serves all K decodings of
    // a latent. The autoregressive one needs a row (a GRU state) per output.
    let shared = c.decoder == .repeated
    let z = latents.flatMap { v in shared ? v : Array([[Float]](repeating: v, count: K).joined()) }
    let stream = DecoderStream(
      network: network, latents: Tensor(shape: [shared ? B : N, c.latentSize], storage: z))
    var previous = [Int](repeating: network.startIndex, count: shared ? 0 : N)
    var choices = [[Int]](repeating: [], count: N)
    var done = [Bool](repeating: false, count: N)
    var stacks = StackBatch(grammar: grammar, batchSize: c.kind == .grammar ? N : 1)
    let lhsOf = grammar.lhsIndexOfProduction
    var allowedByLHS = [[Int]](repeating: [], count: grammar.nonterminals.count + 1)
    if c.kind == .grammar {
      for p in 0..<V where grammar.isUsable(p) && lhsOf[p] >= 0 && lhsOf[p] < allowedByLHS.count {
        allowedByLHS[lhsOf[p]].append(p)
      }
    }
    let everything = Array(0..<V)
    // Length budget: fewest steps each production commits to, fewest per non-terminal, and
    // each row's fewest steps still pending on its stack.
    let budgeted = lengthBudget && c.kind == .grammar
    let commits = budgeted ? (0..<V).map { grammar.stepsToFinish(production: $0) } : []
    let fewest = budgeted ? allowedByLHS.map { $0.map { commits[$0] }.min() ?? 0 } : []
    var pending = [Int](repeating: budgeted ? grammar.shortestDerivation : 0, count: N)
    // Constrained rows (a row whose start has no witness decodes unconstrained).
    var derivations: [ConstrainedDerivation?] =
      constraint.map { search in (0..<N).map { _ in search.start(maxSteps: T) } }
      ?? []
    var ranked: [(score: Float, p: Int)] = []
    var remaining = N
    var t = 0
    while t < T && remaining > 0 {
      let logits = stream.step(previous: shared || t == 0 ? nil : previous).storage
      for i in 0..<N where !done[i] {
        let row = (shared ? i / K : i) * V
        let candidates = c.kind == .grammar ? allowedByLHS[stacks.currentLHS(i)] : everything
        var best = candidates.first ?? 0
        var bestScore = -Float.infinity
        let lhs = budgeted ? stacks.currentLHS(i) : 0
        let constrained = !derivations.isEmpty && derivations[i] != nil
        ranked.removeAll(keepingCapacity: true)
        for p in candidates {
          if budgeted && t + pending[i] - fewest[lhs] + commits[p] > T { continue }
          var s = logits[row + p]
          if case .sample(let temperature) = strategy {
            var u = rng.nextUniform()
            if u < 1e-20 { u = 1e-20 }
            s = s / max(temperature, 1e-6) - logf(-logf(u))
          }
          if constrained { ranked.append((s, p)) }
          if s > bestScore {
            bestScore = s
            best = p
          }
        }
        if constrained {
          // Best first: the first choice the constraint allows; the witness's after `tries`.
          ranked.sort { $0.score > $1.score || ($0.score == $1.score && $0.p < $1.p) }
          var chosen: Int? = nil
          var tried = 0
          for (_, p) in ranked {
            if p == derivations[i]!.witnessNext || tried < tries {
              if p != derivations[i]!.witnessNext { tried += 1 }
              if derivations[i]!.apply(p) {
                chosen = p
                break
              }
            }
          }
          if chosen == nil { chosen = derivations[i]!.applyWitness() }
          best = chosen ?? best
        }
        if c.kind == .grammar {
          // Allowed by construction, so apply cannot fail; guard anyway (never a crash).
          if (try? stacks.apply(production: best, row: i)) == nil {
            done[i] = true
            remaining -= 1
            choices[i] = [-1]
            continue
          }
          choices[i].append(best)
          if !shared { previous[i] = best }
          if budgeted { pending[i] += commits[best] - 1 - fewest[lhs] }
          if stacks.isComplete(i) {
            done[i] = true
            remaining -= 1
          }
        } else {
          if best == 0 {
            done[i] = true
            remaining -= 1
          } else {
            choices[i].append(best)
          }
          if !shared { previous[i] = best }
        }
      }
      t += 1
    }
    return (0..<N).map { i in
      if c.kind == .character {
        return (.string(codec.characterString(choices[i].map { Int32($0) })), [])
      }
      guard done[i], choices[i] != [-1], let s = try? grammar.derive(choices[i]) else {
        return (.incomplete(steps: T), [])
      }
      return (.string(s), choices[i])
    }
  }
}
