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
  /// of its steps has a witness: its own rest), so every output is decoded plainly first and
  /// only a rejected one goes on under the constraint: the constraint never changes an output
  /// that was already valid. The autoregressive decoder does it in one pass: a row whose
  /// prefix is certainly dead (`isCertainlyDead`: no continuation is accepted), or that
  /// finishes rejected, goes back at once to where `ConstraintSearch.resumption` keeps its
  /// choices, with its saved GRU state, and goes on under the constraint with the rest of
  /// its noise. The paper's decoder decodes rejected outputs again (with fresh noise).
  /// (`plainFirst: false` decodes every output under the constraint in one pass, for
  /// comparison: faster, but a refused search changes some outputs that were valid.)
  ///
  /// Sampling noise: one draw from `rng` seeds a generator per output (by its index,
  /// `firstRow` for the first latent's first decoding), so an output does not depend on
  /// which others are decoded with it: a job split by rows decodes what one call decodes.
  public func decode(
    latents: [[Float]], decodings: Int = 1, strategy: DecodingStrategy, rng: inout SeededRandom,
    lengthBudget: Bool = false, constraint: ConstraintSearch? = nil, constraintTries: Int = 2,
    plainFirst: Bool = true, chunk: Int = 512, firstRow: Int = 0
  ) -> [DecodedString] {
    let constraint = configuration.kind == .grammar ? constraint : nil
    let base = rng.next()
    // The autoregressive decoder repairs a rejected output in the same pass, from its saved
    // GRU state; the paper's decoder decodes rejected outputs again.
    let resumable = constraint != nil && plainFirst && configuration.decoder != .repeated
    var out: [DecodedString] = []
    out.reserveCapacity(latents.count * decodings)
    let rowsPerChunk = latentsPerChunk(
      decodings: decodings, constraint: constraint, plainFirst: plainFirst, chunk: chunk)
    var k = 0
    while k < latents.count {
      let part = Array(latents[k..<min(latents.count, k + rowsPerChunk)])
      var rngs = (0..<(part.count * decodings)).map { i in
        SeededRandom(seed: base ^ (UInt64(firstRow + k * decodings + i) &* 0x9E37_79B9_7F4A_7C15))
      }
      var outputs = decodeChunk(
        part, decodings: decodings, strategy: strategy,
        lengthBudget: lengthBudget || constraint != nil, constraint: plainFirst ? nil : constraint,
        tries: max(1, constraintTries), rngs: &rngs, repair: resumable ? constraint : nil)
      if let constraint, plainFirst, !resumable {
        let redo = outputs.indices.filter { !constraint.accepts(outputs[$0].productions) }
        if !redo.isEmpty {
          var redoRNGs = redo.map { rngs[$0] }
          let again = decodeChunk(
            redo.map { part[$0 / decodings] }, decodings: 1, strategy: strategy,
            lengthBudget: true, constraint: constraint, tries: max(1, constraintTries), rngs: &redoRNGs)
          for (i, o) in zip(redo, again) { outputs[i] = o }
        }
      }
      out += outputs.map(\.decoded)
      k += rowsPerChunk
    }
    return out
  }

  /// `decode` split by runs of whole chunks over the ranks of an MPI job (`Cluster.world`);
  /// every rank returns every output, the same as one process's `decode`.
  public func decodeAcrossRanks(
    latents: [[Float]], decodings: Int = 1, strategy: DecodingStrategy, rng: inout SeededRandom,
    lengthBudget: Bool = false, constraint: ConstraintSearch? = nil, chunk: Int = 512
  ) -> [DecodedString] {
    let cluster = Cluster.world
    guard cluster.size > 1 else {
      return decode(
        latents: latents, decodings: decodings, strategy: strategy, rng: &rng, lengthBudget: lengthBudget,
        constraint: constraint, chunk: chunk)
    }
    let per = latentsPerChunk(decodings: decodings, constraint: constraint, chunk: chunk)
    let chunks = (latents.count + per - 1) / per
    let lo = min(latents.count, per * (chunks * cluster.rank / cluster.size))
    let hi = min(latents.count, per * (chunks * (cluster.rank + 1) / cluster.size))
    let mine = decode(
      latents: Array(latents[lo..<hi]), decodings: decodings, strategy: strategy, rng: &rng,
      lengthBudget: lengthBudget, constraint: constraint, chunk: chunk, firstRow: lo * decodings)
    // NUL ends an output; SOH marks an unfinished one.
    var bytes: [UInt8] = []
    for o in mine {
      if let s = o.string { bytes += Array(s.utf8) } else { bytes.append(1) }
      bytes.append(0)
    }
    var all: [DecodedString] = []
    all.reserveCapacity(latents.count * decodings)
    for r in 0..<cluster.size {
      let b = cluster.broadcast(bytes: r == cluster.rank ? bytes : [], root: r)
      for piece in b.split(separator: 0, omittingEmptySubsequences: false).dropLast() {
        all.append(
          piece.elementsEqual([1]) ? .incomplete(steps: configuration.steps) : .string(String(decoding: piece, as: UTF8.self)))
      }
    }
    return all
  }

  /// Latents decoded together (one batch of the network); a job split into runs of whole
  /// chunks decodes, and rounds, exactly as one call does.
  public func latentsPerChunk(
    decodings: Int, constraint: ConstraintSearch?, plainFirst: Bool = true, chunk: Int = 512
  ) -> Int {
    let resumable =
      configuration.kind == .grammar && constraint != nil && plainFirst && configuration.decoder != .repeated
    // Saved states cost layers × H floats per step and output: at most 256 MB a chunk even if
    // every output ran to the step limit (a 512-row chunk of the shipped model: 210 MB; real
    // decodes save about a third of that). Chunks smaller than the plain decoder's would cost
    // more than they save: every chunk ends in a tail of lockstep steps with few rows left.
    let stateBytes = 4 * configuration.gruLayers * configuration.gruHidden * configuration.steps
    let rows = resumable ? min(chunk, max(16, 256_000_000 / max(stateBytes, 1))) : chunk
    return max(1, rows / max(decodings, 1))
  }

  struct ChunkOutput {
    var decoded: DecodedString
    /// The productions of a complete derivation (empty otherwise).
    var productions: [Int]
    /// Every choice made, complete or not.
    var choices: [Int]
  }

  /// Decodes a chunk in lockstep; rows that finish leave the batch.
  ///
  /// With `repair` (the autoregressive decoder), rows decode unconstrained, and a row whose
  /// prefix is certainly dead, or that finishes with a string the constraint rejects, is
  /// repaired at once, in the same batch: it goes back to where `ConstraintSearch.resumption`
  /// keeps its choices (its GRU state there was saved on the way) and goes on under the
  /// constraint, with its own generator. An accepted row is never touched, and the repair
  /// costs no second pass over the batch.
  func decodeChunk(
    _ latents: [[Float]], decodings K: Int, strategy: DecodingStrategy, lengthBudget: Bool,
    constraint: ConstraintSearch?, tries: Int, rngs: inout [SeededRandom],
    repair: ConstraintSearch? = nil
  ) -> [ChunkOutput] {
    let c = configuration
    let V = c.vocabularySize
    let T = c.steps
    // The paper's decoder never sees its choices: one stream row serves all K decodings of
    // a latent. The autoregressive one needs a row (a GRU state) per output.
    let shared = c.decoder == .repeated
    let perRow = shared ? K : 1
    let N = latents.count * K
    let owners: [Int] = (0..<(shared ? latents.count : N)).map { shared ? $0 : $0 / K }
    let repair = shared ? nil : repair
    let z = owners.flatMap { latents[$0] }
    let stream = DecoderStream(
      network: network, latents: Tensor(shape: [owners.count, c.latentSize], storage: z))
    var previous = [Int](repeating: network.startIndex, count: N)
    var choices = [[Int]](repeating: [], count: N)
    // With `repair`: each unconstrained row's GRU state after each choice (layers × H floats
    // per choice), where a repair goes back to.
    var states = [[Float]](repeating: [], count: repair != nil ? N : 0)
    // With `repair`: each unconstrained row's terminals, judged whenever they grow, so a row
    // goes back as soon as its prefix is dead rather than at its end.
    var givenUp = [Bool](repeating: false, count: N)
    var trails = repair.map { r in [ConstraintSearch.Trail](repeating: r.trail(), count: N) } ?? []
    let stateSize = c.gruLayers * c.gruHidden
    var done = [Bool](repeating: false, count: N)
    var complete = [Bool](repeating: false, count: N)
    var failed = [Bool](repeating: false, count: N)
    var t = [Int](repeating: 0, count: N)
    var stacks = StackBatch(grammar: grammar, batchSize: c.kind == .grammar ? N : 1)
    let allowedByLHS = c.kind == .grammar ? usableProductionsByLHS() : []
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
      ?? (repair != nil ? [ConstrainedDerivation?](repeating: nil, count: N) : [])

    /// Applies a choice to row i's stack, budget and record; false when it cannot apply.
    func take(_ best: Int, row i: Int) -> Bool {
      if c.kind == .grammar {
        let lhs = stacks.currentLHS(i)
        // Allowed by construction, so apply cannot fail; guard anyway (never a crash).
        if (try? stacks.apply(production: best, row: i)) == nil {
          done[i] = true
          failed[i] = true
          return false
        }
        choices[i].append(best)
        previous[i] = best
        if budgeted { pending[i] += commits[best] - 1 - fewest[lhs] }
        if stacks.isComplete(i) {
          done[i] = true
          complete[i] = true
        }
      } else {
        if best == 0 {
          done[i] = true
          complete[i] = true
        } else {
          choices[i].append(best)
        }
        previous[i] = best
      }
      t[i] += 1
      if !done[i] && t[i] >= T { done[i] = true }
      return true
    }
    // Stream row of each output; rows leave the stream once all their outputs are done.
    var slot = (0..<N).map { $0 / perRow }

    /// Sends row i back to the first `kept` choices of its rejected output, under the
    /// constraint from there on.
    func rewind(_ i: Int, kept: Int, derivation: ConstrainedDerivation) {
      let old = choices[i]
      choices[i] = []
      stacks.reset(row: i)
      previous[i] = network.startIndex
      t[i] = 0
      pending[i] = budgeted ? grammar.shortestDerivation : 0
      done[i] = false
      complete[i] = false
      failed[i] = false
      for p in old[..<kept] { _ = take(p, row: i) }
      // states[i][j] is the state that takes choice j - 1 in (the start index for j = 0).
      let state =
        kept == 0
        ? [Float](repeating: 0, count: stateSize)[...] : states[i][((kept - 1) * stateSize)..<(kept * stateSize)]
      stream.setState(row: slot[i], state)
      states[i] = []
      derivations[i] = derivation
    }
    var live = owners.count
    var ranked: [(score: Float, p: Int)] = []
    var remaining = done.filter { !$0 }.count
    var first = true
    while remaining > 0 {
      // Drop finished rows once a quarter of the stream is idle.
      var active = [Bool](repeating: false, count: live)
      for i in 0..<N where !done[i] { active[slot[i]] = true }
      let busy = active.filter { $0 }.count
      if busy * 4 <= live * 3 {
        var newSlot = [Int](repeating: -1, count: live)
        var kept: [Int] = []
        for r in 0..<live where active[r] {
          newSlot[r] = kept.count
          kept.append(r)
        }
        stream.keep(kept)
        for i in 0..<N where !done[i] { slot[i] = newSlot[slot[i]] }
        live = kept.count
      }
      var prev: [Int]? = nil
      if !shared && !first {
        var p = [Int](repeating: network.startIndex, count: live)
        for i in 0..<N where !done[i] { p[slot[i]] = previous[i] }
        prev = p
      }
      first = false
      let logits = stream.step(previous: prev).storage
      for i in 0..<N where !done[i] {
        let row = slot[i] * V
        let candidates = c.kind == .grammar ? allowedByLHS[stacks.currentLHS(i)] : everything
        var best = candidates.first ?? 0
        var bestScore = -Float.infinity
        let lhs = budgeted ? stacks.currentLHS(i) : 0
        let constrained = !derivations.isEmpty && derivations[i] != nil
        ranked.removeAll(keepingCapacity: true)
        for p in candidates {
          if budgeted && t[i] + pending[i] - fewest[lhs] + commits[p] > T { continue }
          var s = logits[row + p]
          if case .sample(let temperature) = strategy {
            var u = rngs[i].nextUniform()
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
        let repairable = repair != nil && derivations[i] == nil && !givenUp[i]
        if repairable { stream.appendState(row: slot[i], to: &states[i]) }
        _ = take(best, row: i)
        if repairable, !done[i], let repair, repair.advance(&trails[i], by: best), repair.isDead(trails[i]) {
          if let (kept, d) = repair.resumption(of: choices[i], maxSteps: T, firstDead: choices[i].count) {
            rewind(i, kept: kept, derivation: d)
          } else {
            givenUp[i] = true  // no witness even at the start: the plain decode stands
          }
        } else if done[i] {
          if repairable, let repair, !failed[i], !(complete[i] && repair.accepts(choices[i])),
            let (kept, d) = repair.resumption(of: choices[i], maxSteps: T)
          {
            rewind(i, kept: kept, derivation: d)
          } else {
            remaining -= 1
          }
        }
      }
    }
    return (0..<N).map { i in
      if c.kind == .character {
        return ChunkOutput(
          decoded: .string(codec.characterString(choices[i].map { Int32($0) })), productions: [],
          choices: choices[i])
      }
      guard complete[i], !failed[i], let s = try? grammar.derive(choices[i]) else {
        return ChunkOutput(decoded: .incomplete(steps: T), productions: [], choices: choices[i])
      }
      return ChunkOutput(decoded: .string(s), productions: choices[i], choices: choices[i])
    }
  }
}

extension VAEModel {
  /// The usable productions of each left-hand side (indexed by non-terminal): what the
  /// decoder's mask allows when that symbol is on top of the stack.
  func usableProductionsByLHS() -> [[Int]] {
    let lhsOf = grammar.lhsIndexOfProduction
    var byLHS = [[Int]](repeating: [], count: grammar.nonterminals.count + 1)
    for p in 0..<configuration.vocabularySize
    where grammar.isUsable(p) && lhsOf[p] >= 0 && lhsOf[p] < byLHS.count {
      byLHS[lhsOf[p]].append(p)
    }
    return byLHS
  }

  /// Index sequences and true lengths of strings.
  /// - Throws: `ModelError.input` naming the first string that does not encode.
  func sequences(_ strings: [String]) throws(ModelError) -> [(sequence: [Int32], length: Int)] {
    var out: [(sequence: [Int32], length: Int)] = []
    for (i, s) in strings.enumerated() {
      do { out.append(try codec.encode(s)) } catch {
        throw .input("input \(i + 1) ('\(s)'): \(error.description)")
      }
    }
    return out
  }

  /// log p(x | z): for each string and its latent, the log-probability that one sampled
  /// decoding (temperature 1, no constraint) writes exactly that string, teacher-forced in
  /// inference mode. Grammar models: the sum over the parse's productions of the masked
  /// log-softmax (the decoder's masks: the usable productions of the stack's top symbol),
  /// so this is the probability of the parse's derivation, and of the string itself when
  /// the grammar is unambiguous (another derivation of the same string would only add to
  /// it). Character models: the characters, then the end character when the string is
  /// shorter than the model's steps.
  /// - Throws: `ModelError.input` naming a string that does not encode.
  public func logLikelihoods(_ strings: [String], latents: [[Float]]) throws(ModelError) -> [Double] {
    logLikelihoods(encoded: try sequences(strings), latents: latents)
  }

  /// `logLikelihoods` of already encoded strings (`sequences`).
  func logLikelihoods(
    encoded: [(sequence: [Int32], length: Int)], latents: [[Float]]
  ) -> [Double] {
    precondition(encoded.count == latents.count, "one latent per string")
    let c = configuration
    let V = c.vocabularySize
    let T = c.steps
    let B = encoded.count
    guard B > 0 else { return [] }
    let sequences = encoded.map(\.sequence)
    // Character strings shorter than the steps also have to end (character 0).
    let lengths = encoded.map { c.kind == .character && $0.length < T ? $0.length + 1 : $0.length }
    let S = max(1, lengths.max() ?? 1)
    var previous = [Int](repeating: network.startIndex, count: network.embedding == nil ? 0 : B * S)
    if network.embedding != nil {
      for b in 0..<B { for t in 1..<S { previous[b * S + t] = Int(sequences[b][t - 1]) } }
    }
    let tape = Tape(recording: false)
    let z = tape.constant(Tensor(shape: [B, c.latentSize], storage: latents.flatMap { $0 }))
    let logits = network.decoderLogits(
      network.decoderInput(z, training: false), previous: previous, steps: S
    ).value.storage
    let allowed: [[Int]]
    if c.kind == .grammar {
      let (lhs, byLHS) = (grammar.lhsIndexOfProduction, usableProductionsByLHS())
      allowed = (0..<V).map { lhs[$0] >= 0 && lhs[$0] < byLHS.count ? byLHS[lhs[$0]] : [$0] }
    } else {
      allowed = Array(repeating: Array(0..<V), count: V)
    }
    return (0..<B).map { b in
      var sum = 0.0
      for t in 0..<lengths[b] {
        let y = Int(sequences[b][t])
        let row = (b * S + t) * V
        let choices = allowed[y]
        var m = -Double.infinity
        for p in choices { m = max(m, Double(logits[row + p])) }
        var e = 0.0
        for p in choices { e += exp(Double(logits[row + p]) - m) }
        sum += Double(logits[row + y]) - m - log(e)
      }
      return sum
    }
  }
}
