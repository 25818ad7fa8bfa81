import CFG
import Chemistry
import Engine
import Testing

@testable import GrammarVAE

/// An untrained autoregressive model on the zinc-rr grammar (near-uniform choices).
func untrainedZincRR() throws -> (Grammar, ModelConfiguration, VAEModel) {
  let g = try Grammar.named("zinc-rr")
  var c = Preset.tinyAR.configuration(kind: .grammar, steps: g.maxLength, vocabularySize: g.productions.count)
  c.decoder = .autoregressive
  let text = try #require(ShippedGrammar.all.first { $0.name == "zinc-rr" }).text
  return (g, c, try VAEModel(configuration: c, grammar: g, grammarText: text, seed: 3))
}

@Suite struct ChemistryConstraintTests {
  @Test(arguments: ["zinc", "zinc-rr"]) func startHasWitness(name: String) throws {
    let g = try Grammar.named(name)
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    var d = try #require(search.start(maxSteps: g.maxLength))
    var productions: [Int] = []
    while let p = d.applyWitness() { productions.append(p) }
    #expect(d.isComplete)
    let s = try g.derive(productions)
    #expect(SMILES.check(s).isValid, "\(s)")
    #expect(search.accepts(productions))
  }

  /// Random decodes that respect the mask: at each step a few allowed productions are tried
  /// in a random order (as a sampler with random logits would), then the witness's; every
  /// result must be complete, within the length limit and a molecule by the checker.
  @Test(arguments: ["zinc", "zinc-rr"]) func randomMaskRespectingDecodesAreMolecules(name: String) throws {
    let g = try Grammar.named(name)
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    var rng = SeededRandom(seed: 7)
    let lhs = g.lhsIndexOfProduction
    var distinct = Set<String>()
    var rings = 0
    let decodes = 40
    for _ in 0..<decodes {
      var d = try #require(search.start(maxSteps: g.maxLength))
      var productions: [Int] = []
      var stack = DerivationStack(grammar: g)
      while !d.isComplete {
        var options = (0..<g.productions.count).filter { g.isUsable($0) && lhs[$0] == stack.currentLHS }
        options.shuffle(using: &rng)
        var chosen: Int? = nil
        for p in options.prefix(2) where d.apply(p) {
          chosen = p
          break
        }
        if chosen == nil { chosen = d.applyWitness() }
        let p = try #require(chosen, "no allowed production after \(productions.count) steps")
        try stack.apply(production: p)
        productions.append(p)
      }
      #expect(productions.count <= g.maxLength)
      let s = try g.derive(productions)
      let check = SMILES.check(s)
      #expect(check.isValid, "\(s): \(check.error?.description ?? "")")
      rings += check.summary?.ringCount ?? 0
      distinct.insert(s)
    }
    #expect(distinct.count > decodes / 2)
    _ = rings
  }

  /// A derivation that opens rings gets them closed: after choosing ring bonds on aromatic
  /// atoms, the witness completes an aromatic ring.
  @Test func openedRingsAreClosed() throws {
    let g = try Grammar.named("zinc-rr")
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    let parser = Parser(grammar: g)
    // The first steps of "c1ccc(…": aromatic atoms and an open ring.
    let prefix = Array(try parser.parse("c1cccc1C").prefix(7))
    var d = try #require(search.start(maxSteps: g.maxLength))
    var productions: [Int] = []
    for p in prefix {
      let applied = d.apply(p)
      #expect(applied, "production \(g.productions[p]) refused")
      productions.append(p)
    }
    while let p = d.applyWitness() { productions.append(p) }
    let s = try g.derive(productions)
    #expect(s.hasPrefix("c1c"), "\(s)")
    #expect(SMILES.check(s).summary?.ringCount == 1, "\(s)")
  }

  /// The decoder itself on an untrained network (near-uniform choices): every sample is
  /// complete and a molecule with the constraint; without it most are not.
  @Test func untrainedModelSamplesAreMolecules() throws {
    let (g, c, model) = try untrainedZincRR()
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    var rng = SeededRandom(seed: 5)
    let z = (0..<24).map { _ in (0..<c.latentSize).map { _ in rng.nextNormal() } }
    let constrained = model.decode(
      latents: z, strategy: .sample(temperature: 1), rng: &rng, constraint: search)
    for o in constrained {
      let s = try #require(o.string, "incomplete")
      #expect(SMILES.check(s).isValid, "\(s)")
    }
    let plain = model.decode(latents: z, strategy: .sample(temperature: 1), rng: &rng, lengthBudget: true)
    let plainValid = plain.compactMap(\.string).filter { SMILES.check($0).isValid }.count
    #expect(plainValid < z.count / 2, "an untrained decoder should mostly fail without the constraint")
  }

  /// A rejected derivation resumes before its first dead prefix: what is kept is the
  /// original's prefix, it is not dead, and its witness completes it to a molecule.
  @Test func rejectedDerivationsResumeBeforeTheirFirstDeadPrefix() throws {
    let g = try Grammar.named("zinc-rr")
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    let constraint = SMILESConstraint(grammar: g)
    let parser = Parser(grammar: g)
    // Dead at the '(' of the fifth carbon's branch (valence), at the end (ring never
    // closed; aromatic atoms outside a ring), and at the second ring digit 1 (same atom).
    for (s, deadBefore) in [("C(C)(C)(C)(C)C", "C(C)(C)(C)("), ("c1ccccC", nil), ("ccc", nil), ("CC1CCCC1CCC1C", nil)] {
      let seq = try parser.parse(s)
      #expect(!search.accepts(seq), "\(s)")
      let (kept, d) = try #require(search.resumption(of: seq, maxSteps: g.maxLength), "\(s)")
      #expect(kept < seq.count)
      let prefixText = d.terminals.map { g.terminals[$0] }.joined()
      if let deadBefore { #expect(prefixText.count < deadBefore.count, "\(s): kept '\(prefixText)'") }
      var d2 = d
      var productions = Array(seq[..<kept])
      #expect(constraint.examine(d2.terminals).status != .dead)
      while let p = d2.applyWitness() { productions.append(p) }
      let out = try g.derive(productions)
      #expect(SMILES.check(out).isValid, "\(s) -> \(out)")
      #expect(search.accepts(productions))
    }
  }

  /// A row's saved GRU state, set into another row of the same latent, continues exactly as
  /// the first row does: the repair's way back is the original's decoding.
  @Test func savedStreamStateContinuesTheRow() throws {
    let (_, c, model) = try untrainedZincRR()
    var rng = SeededRandom(seed: 9)
    let z0 = (0..<c.latentSize).map { _ in rng.nextNormal() }
    let stream = DecoderStream(network: model.network, latents: Tensor(shape: [2, c.latentSize], storage: z0 + z0))
    _ = stream.step(previous: nil)
    // Row 0 takes 5, 9, 2; row 1 takes 7, 3, 11: different states.
    var saved: [Float] = []
    _ = stream.step(previous: [5, 7])
    stream.appendState(row: 0, to: &saved)
    let a = stream.step(previous: [9, 3]).storage
    let V = c.vocabularySize
    #expect(Array(a[0..<V]) != Array(a[V..<(2 * V)]))
    // Row 1 gets row 0's state before its step with choice 9: the same logits row 0 had.
    stream.setState(row: 1, saved[...])
    let b = stream.step(previous: [2, 9]).storage
    #expect(Array(b[V..<(2 * V)]) == Array(a[0..<V]))
  }

  /// A repaired output keeps the plain decode's choices up to where the resumption keeps them
  /// (the first certainly dead prefix, else the first dead one), then is a molecule.
  @Test func repairedOutputsKeepThePlainPrefix() throws {
    let (g, c, model) = try untrainedZincRR()
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    var rng = SeededRandom(seed: 4)
    let z = (0..<12).map { _ in (0..<c.latentSize).map { _ in rng.nextNormal() } }
    var plainRNGs = z.map { _ in SeededRandom(seed: 1) }
    let plain = model.decodeChunk(
      z, decodings: 1, strategy: .greedy, lengthBudget: true, constraint: nil, tries: 1, rngs: &plainRNGs)
    var repairRNGs = z.map { _ in SeededRandom(seed: 1) }
    let repaired = model.decodeChunk(
      z, decodings: 1, strategy: .greedy, lengthBudget: true, constraint: nil, tries: 1, rngs: &repairRNGs,
      repair: search)
    var changed = 0
    for (p, r) in zip(plain, repaired) {
      let s = try #require(r.decoded.string)
      #expect(SMILES.check(s).isValid, "\(s)")
      if search.accepts(p.choices) {
        #expect(r.choices == p.choices)
        continue
      }
      changed += 1
      var trail = search.trail()
      var firstDead: Int? = nil
      for (k, q) in p.choices.enumerated() where firstDead == nil {
        if search.advance(&trail, by: q), search.isDead(trail) { firstDead = k + 1 }
      }
      let (kept, _) = try #require(search.resumption(of: p.choices, maxSteps: g.maxLength, firstDead: firstDead))
      #expect(Array(r.choices[..<kept]) == Array(p.choices[..<kept]))
    }
    #expect(changed > 0, "an untrained decoder should need repairs")
  }

  /// An output depends on its latent, its row and the seed, not on what else is decoded with
  /// it: two calls on halves (the second starting at row 12) give one call's outputs.
  @Test func samplingNoiseFollowsTheRow() throws {
    let (g, c, model) = try untrainedZincRR()
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    var draw = SeededRandom(seed: 2)
    let z = (0..<24).map { _ in (0..<c.latentSize).map { _ in draw.nextNormal() } }
    for constraint in [nil, search] {
      var r1 = SeededRandom(seed: 8)
      let whole = model.decode(latents: z, strategy: .sample(temperature: 1), rng: &r1, lengthBudget: true, constraint: constraint)
      var r2 = SeededRandom(seed: 8)
      var r3 = r2
      let a = model.decode(
        latents: Array(z[..<12]), strategy: .sample(temperature: 1), rng: &r2, lengthBudget: true, constraint: constraint)
      let b = model.decode(
        latents: Array(z[12...]), strategy: .sample(temperature: 1), rng: &r3, lengthBudget: true, constraint: constraint,
        firstRow: 12)
      #expect(whole == a + b)
      #expect(r1.next() == r2.next())
    }
  }

  /// Greedy decodes that are molecules already come back unchanged under the constraint.
  @Test func validDecodesAreLeftAlone() throws {
    let g = try Grammar.named("zinc-rr")
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    let parser = Parser(grammar: g)
    for s in ["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2[nH]ccc2c1", "C1CC1N"] {
      let seq = try parser.parse(s)
      #expect(search.accepts(seq), "\(s)")
    }
    for s in ["c1ccccc1C", "CC"] { #expect(search.accepts(try parser.parse(s))) }
    // ZINC molecules the prefix rules are stricter on (an exocyclic C=c, '\\' between aromatic
    // atoms): a finished string is judged by the checker, so such a decode stays.
    for s in ["CSc1ccc(/C=c2\\sc3ncnn3c2=O)cc1", "C[C@H]1N=C(CCNC(=O)CCC2=c3ccccc3=[NH+]C2)CS1"] {
      #expect(SMILES.advise(prefix: Array(s.utf8)).status != .complete, "\(s)")
      #expect(search.accepts(try parser.parse(s)), "\(s)")
    }
    for s in ["c1cccc1", "C(C)(C)(C)(C)C", "ccc"] { #expect(!search.accepts(try parser.parse(s)), "\(s)") }
  }
}

@Suite struct SMILESPrefixAdviceTests {
  func advise(_ s: String) -> SMILESPrefixAdvice { SMILES.advise(prefix: Array(s.utf8)) }

  @Test func deadPrefixes() {
    // Valence exceeded, ring onto a bonded atom, a one-neighbour aromatic atom left behind,
    // an unkekulizable closed ring, syntax.
    for s in ["C(C)(C)(C)(C)C", "F(C)C", "C1C1", "c1ccccc1(c)C", "c1cccc1C", "C)", "c1ccccc1=c", "c1ccccc1/c", "c1cc[c-2]"] {
      #expect(advise(s).status == .dead, "\(s) \(advise(s))")
    }
  }

  /// The early drop uses only the sound rules: syntax, ring closures, valence. The
  /// conservative ones (aromatic patterns, a closed system a fused ring could still repair)
  /// are `advise`'s alone, so a plain decode that ends a molecule is never dropped early.
  @Test func certainlyDeadIsTheSoundPart() {
    for s in ["C(C)(C)(C)(C)C", "F(C)C", "C1C1", "C)", "CC1CCCC1CCC1C1"] {
      #expect(SMILES.certainlyDead(prefix: Array(s.utf8)), "\(s)")
    }
    for s in ["", "CC", "C1CC", "CC[N", "c1ccccc1/c", "c1cccc1C", "c1cc[c-2]", "ccc"] {
      #expect(!SMILES.certainlyDead(prefix: Array(s.utf8)), "\(s)")
    }
    // RDKit-valid molecules with a prefix `advise` calls dead: never certainly dead.
    for s in ["c1ccccc1/c1ccccc1", "CSc1ccc(/C=c2\\sc3ncnn3c2=O)cc1"] {
      #expect(SMILES.check(s).isValid, "\(s)")
      for n in 1...s.utf8.count { #expect(!SMILES.certainlyDead(prefix: Array(s.utf8.prefix(n))), "\(s) at \(n)") }
    }
  }

  @Test func openAndComplete() {
    #expect(advise("").status == .open)
    #expect(advise("CC").status == .complete)
    #expect(advise("c1ccccc1").status == .complete)
    #expect(advise("C1CC").status == .open)
    #expect(advise("CC(").status == .open)
    #expect(advise("CC[N").status == .open)  // bracket still open
    #expect(advise("CC=").status == .open)
    #expect(advise("Cc").status == .open)  // aromatic atom that may still open a ring
    // A ring just closed on an atom that can still take the bond its π count needs: a
    // substituent on n (pyrrole-type), =O on c (pyridone). ZINC molecules, cut there.
    for (prefix, molecule) in [
      ("Cc1nccn1", "Cc1nccn1CC(=O)N1CCCC[C@@H]1CCNC(=O)c1ccccc1"),
      ("O=C(NCc1nccc2ccccc12)c1ccc[nH]c1", "O=C(NCc1nccc2ccccc12)c1ccc[nH]c1=O"),
      ("CCn1c(CC2CC[NH2+]CC2)nn(CCO)c1", "CCn1c(CC2CC[NH2+]CC2)nn(CCO)c1=O"),
      ("c1cccc1", "O=c1cccc1"),
    ] {
      #expect(advise(prefix).status == .open, "\(prefix) \(advise(prefix))")
      #expect(advise(molecule).status == .complete, "\(molecule)")
      #expect(SMILES.check(molecule).isValid, "\(molecule)")
    }
    #expect(advise("Cc1nccn1").goals.first?.terminals == ["C"])
    #expect(advise("c1ccc[nH]c1").goals.first?.terminals == ["=", "O"])
  }

  @Test func goalsCloseRings() {
    // After four aromatic atoms a fifth and then the digit would make a five-ring: not
    // kekulizable without a lone pair, so the six-ring is proposed.
    let a = advise("c1cccc")
    #expect(a.goals.first?.terminals == ["c", "1"])
    #expect(advise("c1ccccc").goals.first?.terminals == ["1"])
    #expect(advise("c1cc[nH]c").goals.first?.terminals == ["1"])  // pyrrole
    #expect(advise("C1CC").goals.first?.terminals == ["1"])
    #expect(advise("C1CC").goals.first?.then == nil)
    #expect(advise("C1CC2CC").goals.first?.then == "C")  // ring 1 stays open
  }

  @Test func openBranchesAskForNoMoreAtoms() {
    // The grammar writes a branch's ')': closing the last ring inside it completes the
    // molecule, and with only branches open the branch is closed first.
    #expect(advise("C1CC(C").goals.first?.terminals == ["1"])
    #expect(advise("C1CC(C").goals.first?.then == nil)
    #expect(advise("CC(C").goals.first?.terminals == [")"])
    #expect(advise("CC(").goals.first?.then == nil)
  }
}

@Suite struct WitnessSearchTests {
  /// A legal choice that opens a branch beside an open aromatic ring has a witness within the
  /// default node limit (the search once kept extending the branch and refused it).
  @Test func branchBesideAnOpenRingIsAllowed() throws {
    let g = try Grammar.named("zinc-rr")
    let search = ConstraintSearch(grammar: g, constraint: SMILESConstraint(grammar: g))
    let productions = try Parser(grammar: g).parse("CCc1cc(C)ccc1")
    var d = try #require(search.start(maxSteps: g.maxLength))
    // Apply productions until "CCc1c" is written and the next chain is to be chosen.
    var k = 0
    while k < productions.count, d.terminals.map({ g.terminals[$0] }).joined() != "CCc1c" {
      let applied = d.apply(productions[k])
      #expect(applied)
      k += 1
    }
    let branch = try #require(g.productions.firstIndex { $0.description == "chain -> atom BB chain" })
    #expect(productions[k] == branch)
    #expect(d.allows(branch))
    let applied = d.apply(branch)
    #expect(applied)
    while d.applyWitness() != nil {}
    #expect(d.isComplete)
    #expect(SMILES.check(d.terminals.map { g.terminals[$0] }.joined()).isValid)
  }
}
