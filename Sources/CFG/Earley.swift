// The Earley recognizer's inner loop over raw buffers.

/// One Earley item: dotted rule, origin set, and back-pointers for the first derivation.
struct EarleyItem {
  var dot: Int32
  /// Symbol after the dot (cached from the tables): >= 0 non-terminal, < 0 terminal, `end`.
  var sym: Int32
  var origin: Int32
  /// The item this one extends (-1 for a predicted item).
  var pred: Int32
  /// The completed child that extended `pred`: an item, -1 for a terminal, <= -2 for the empty
  /// derivation of non-terminal `-2 - child`.
  var child: Int32
  /// The previous item in the same set with the same dotted rule (for deduplication).
  var next: Int32
  /// Nonzero when a second derivation of this item was found.
  var ambiguous: Int32
  var unused: Int32 = 0
}

/// Reusable buffers for one parser (one per thread).
final class Scratch {
  var tokens: [Int32] = []
  var offsets: [Int32] = []
  var work: [Int32] = []
  var items: UnsafeMutablePointer<EarleyItem>
  var itemCapacity: Int
  var setStart: UnsafeMutablePointer<Int32>
  var setCapacity: Int
  var scan: UnsafeMutablePointer<Int32>
  var scanCapacity: Int
  let dStamp: UnsafeMutablePointer<Int>
  let dHead: UnsafeMutablePointer<Int32>
  let ntStamp: UnsafeMutablePointer<Int>
  var generation = 0
  var output: [Int32] = []

  init(dottedCount: Int, ntCount: Int) {
    itemCapacity = 1024
    items = .allocate(capacity: itemCapacity)
    setCapacity = 256
    setStart = .allocate(capacity: setCapacity)
    scanCapacity = 256
    scan = .allocate(capacity: scanCapacity)
    dStamp = .allocate(capacity: max(1, dottedCount))
    dStamp.initialize(repeating: -1, count: max(1, dottedCount))
    dHead = .allocate(capacity: max(1, dottedCount))
    dHead.initialize(repeating: -1, count: max(1, dottedCount))
    ntStamp = .allocate(capacity: max(1, ntCount))
    ntStamp.initialize(repeating: -1, count: max(1, ntCount))
  }

  deinit {
    items.deallocate()
    setStart.deallocate()
    scan.deallocate()
    dStamp.deallocate()
    dHead.deallocate()
    ntStamp.deallocate()
  }
}

/// The recognizer state for one run: pointers taken once, counts in registers.
struct Earley {
  let t: ParserTables
  let tokens: UnsafeBufferPointer<Int32>
  var items: UnsafeMutablePointer<EarleyItem>
  var itemCapacity: Int
  var count = 0
  var setStart: UnsafeMutablePointer<Int32>
  var setCapacity: Int
  var scan: UnsafeMutablePointer<Int32>
  var scanCapacity: Int
  var scanCount = 0
  let dStamp: UnsafeMutablePointer<Int>
  let dHead: UnsafeMutablePointer<Int32>
  let ntStamp: UnsafeMutablePointer<Int>
  var generation: Int
  let dotSymbol: UnsafeMutablePointer<Int32>
  let dotProduction: UnsafeMutablePointer<Int32>
  let lhs: UnsafeMutablePointer<Int32>
  let keep: UnsafeMutablePointer<UInt64>
  let words: Int
  let predictStart: UnsafeMutablePointer<Int32>
  let predictFlat: UnsafeMutablePointer<Int32>
  let nullable: UnsafeMutablePointer<Bool>
  let lookaheadCount: Int

  init(tables t: ParserTables, scratch s: Scratch, tokens: UnsafeBufferPointer<Int32>) {
    self.t = t
    self.tokens = tokens
    items = s.items
    itemCapacity = s.itemCapacity
    setStart = s.setStart
    setCapacity = s.setCapacity
    scan = s.scan
    scanCapacity = s.scanCapacity
    dStamp = s.dStamp
    dHead = s.dHead
    ntStamp = s.ntStamp
    generation = s.generation
    dotSymbol = t.dotSymbolP
    dotProduction = t.dotProductionP
    lhs = t.lhsP
    keep = t.keepP
    words = t.words
    predictStart = t.predictStartP
    predictFlat = t.predictFlatP
    nullable = t.nullableP
    lookaheadCount = t.terminalCount + 2
  }

  /// Hands grown buffers and the generation counter back to the scratch.
  func store(into s: Scratch) {
    s.items = items
    s.itemCapacity = itemCapacity
    s.setStart = setStart
    s.setCapacity = setCapacity
    s.scan = scan
    s.scanCapacity = scanCapacity
    s.generation = generation
  }

  @inline(__always) func keeps(_ d: Int32, _ la: Int) -> Bool {
    keep[Int(d) &* words &+ (la &>> 6)] & (1 &<< UInt64(la & 63)) != 0
  }

  mutating func run(anyAt: Int) -> (item: Int, failedAt: Int) {
    let tokenCount = tokens.count
    let n = anyAt >= 0 ? anyAt : tokenCount
    if setCapacity < n + 2 {
      setStart.deallocate()
      setCapacity = max(2 * setCapacity, n + 2)
      setStart = .allocate(capacity: setCapacity)
    }
    @inline(__always) func lookahead(_ i: Int) -> Int {
      if i == anyAt { return t.any }
      return i < tokenCount ? Int(tokens[i]) : t.eof
    }
    count = 0
    generation &+= 1
    setStart[0] = 0
    var la = lookahead(0)
    predict(t.startNT, set: 0, la: la)
    var i = 0
    while true {
      // Complete and predict within set i.
      var idx = Int(setStart[i])
      scanCount = 0
      while idx < count {
        let x = items[idx].sym
        if x == ParserTables.end {
          let j = Int(items[idx].origin)
          if j != i {
            let a = lhs[Int(dotProduction[Int(items[idx].dot)])]
            var k = Int(setStart[j])
            let kEnd = Int(setStart[j + 1])
            while k < kEnd {
              if items[k].sym == a {
                let nd = items[k].dot &+ 1
                if keeps(nd, la) {
                  add(nd, origin: items[k].origin, pred: Int32(k), child: Int32(idx))
                }
              }
              k &+= 1
            }
          }
        } else if x >= 0 {
          predict(x, set: i, la: la)
          if nullable[Int(x)] {
            // Aycock–Horspool: step over a nullable symbol at once.
            let nd = items[idx].dot &+ 1
            if keeps(nd, la) {
              add(nd, origin: items[idx].origin, pred: Int32(idx), child: -2 - x)
            }
          }
        } else if i < n {
          if scanCount == scanCapacity { growScan() }
          scan[scanCount] = Int32(idx)
          scanCount &+= 1
        }
        idx &+= 1
      }
      if i == n { break }
      // Scan token i into set i + 1.
      let token = ~tokens[i]
      generation &+= 1
      setStart[i + 1] = Int32(count)
      la = lookahead(i + 1)
      var matched = false
      for q in 0..<scanCount {
        let k = Int(scan[q])
        if items[k].sym == token {
          matched = true
          let nd = items[k].dot &+ 1
          if keeps(nd, la) { add(nd, origin: items[k].origin, pred: Int32(k), child: -1) }
        }
      }
      i += 1
      if Int(setStart[i]) == count {
        setStart[i + 1] = Int32(count)
        // No item took token i - 1, or none that did can continue with token i.
        return (-1, matched ? i : i - 1)
      }
    }
    setStart[n + 1] = Int32(count)
    if anyAt < 0 {
      var k = Int(setStart[n])
      while k < count {
        if items[k].sym == ParserTables.end && items[k].origin == 0
          && lhs[Int(dotProduction[Int(items[k].dot)])] == t.startNT
        {
          return (k, n)
        }
        k += 1
      }
    }
    return (-1, n)
  }

  @inline(__always) mutating func predict(_ nt: Int32, set i: Int, la: Int) {
    let n = Int(nt)
    if ntStamp[n] == generation { return }
    ntStamp[n] = generation
    let row = n &* lookaheadCount &+ la
    var k = Int(predictStart[row])
    let end = Int(predictStart[row + 1])
    while k < end {
      add(predictFlat[k], origin: Int32(i), pred: -1, child: -1)
      k &+= 1
    }
  }

  @inline(__always) mutating func add(_ d: Int32, origin: Int32, pred: Int32, child: Int32) {
    let di = Int(d)
    if dStamp[di] == generation {
      var k = Int(dHead[di])
      while k >= 0 {
        if items[k].origin == origin {
          if items[k].pred != pred || items[k].child != child { items[k].ambiguous = 1 }
          return
        }
        k = Int(items[k].next)
      }
    } else {
      dStamp[di] = generation
      dHead[di] = -1
    }
    if count == itemCapacity { growItems() }
    items[count] = EarleyItem(
      dot: d, sym: dotSymbol[di], origin: origin, pred: pred, child: child, next: dHead[di],
      ambiguous: 0)
    dHead[di] = Int32(count)
    count &+= 1
  }

  @inline(never) mutating func growItems() {
    let bigger = UnsafeMutablePointer<EarleyItem>.allocate(capacity: 2 * itemCapacity)
    bigger.moveInitialize(from: items, count: count)
    items.deallocate()
    items = bigger
    itemCapacity *= 2
  }

  @inline(never) mutating func growScan() {
    let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * scanCapacity)
    bigger.moveInitialize(from: scan, count: scanCount)
    scan.deallocate()
    scan = bigger
    scanCapacity *= 2
  }
}
