// Maximum matching in a general graph (Edmonds' blossom algorithm), iterative. Aromatic
// systems have odd rings (pyrrole, azulene), so bipartite matching is not enough.

enum Matching {
  /// A maximum matching (`match[v]` is v's partner or -1), found one connected component at
  /// a time so each search costs the size of its component; stops at the first component
  /// that cannot be matched perfectly. `unmatched` is a vertex of that component, or nil.
  static func perfect(_ adj: [[Int]]) -> (match: [Int], unmatched: Int?) {
    let n = adj.count
    var result = [Int](repeating: -1, count: n)
    var component = [Int](repeating: -1, count: n)
    var local = [Int](repeating: -1, count: n)
    for start in 0..<n where component[start] < 0 {
      var members = [start]
      component[start] = start
      var head = 0
      while head < members.count {
        let v = members[head]
        head += 1
        for w in adj[v] where component[w] < 0 {
          component[w] = start
          members.append(w)
        }
      }
      // An odd component cannot be matched; its first atom stands for it.
      if members.count % 2 == 1 { return (result, start) }
      for (i, v) in members.enumerated() { local[v] = i }
      let sub = members.map { v in adj[v].map { local[$0] } }
      let match = maximum(sub)
      if let i = match.firstIndex(of: -1) { return (result, members[i]) }
      for (i, v) in members.enumerated() { result[v] = members[match[i]] }
    }
    return (result, nil)
  }

  /// `match[v]` is v's partner or -1. `adj` lists neighbours by vertex index.
  static func maximum(_ adj: [[Int]]) -> [Int] {
    let n = adj.count
    var match = [Int](repeating: -1, count: n)
    // Greedy start: most vertices get matched here; the search only fixes the rest.
    for v in 0..<n where match[v] < 0 {
      for w in adj[v] where match[w] < 0 && w != v {
        match[v] = w
        match[w] = v
        break
      }
    }
    var parent = [Int](repeating: -1, count: n)
    var base = Array(0..<n)
    var used = [Bool](repeating: false, count: n)
    var blossom = [Bool](repeating: false, count: n)
    var seen = [Bool](repeating: false, count: n)
    var queue: [Int] = []
    queue.reserveCapacity(n)

    func lca(_ a0: Int, _ b0: Int) -> Int {
      for i in 0..<n { seen[i] = false }
      var a = a0
      while true {
        a = base[a]
        seen[a] = true
        if match[a] < 0 { break }
        a = parent[match[a]]
      }
      var b = b0
      while true {
        b = base[b]
        if seen[b] { return b }
        b = parent[match[b]]
      }
    }

    func markPath(_ v0: Int, _ b: Int, _ child0: Int) {
      var v = v0
      var child = child0
      while base[v] != b {
        blossom[base[v]] = true
        blossom[base[match[v]]] = true
        parent[v] = child
        child = match[v]
        v = parent[match[v]]
      }
    }

    // Returns the free vertex that ends an augmenting path from root, or -1.
    func findPath(_ root: Int) -> Int {
      for i in 0..<n {
        used[i] = false
        parent[i] = -1
        base[i] = i
      }
      used[root] = true
      queue.removeAll(keepingCapacity: true)
      queue.append(root)
      var head = 0
      while head < queue.count {
        let v = queue[head]
        head += 1
        for to in adj[v] {
          if base[v] == base[to] || match[v] == to { continue }
          if to == root || (match[to] >= 0 && parent[match[to]] >= 0) {
            let cur = lca(v, to)
            for i in 0..<n { blossom[i] = false }
            markPath(v, cur, to)
            markPath(to, cur, v)
            for i in 0..<n where blossom[base[i]] {
              base[i] = cur
              if !used[i] {
                used[i] = true
                queue.append(i)
              }
            }
          } else if parent[to] < 0 {
            parent[to] = v
            if match[to] < 0 { return to }
            used[match[to]] = true
            queue.append(match[to])
          }
        }
      }
      return -1
    }

    for root in 0..<n where match[root] < 0 {
      var v = findPath(root)
      while v >= 0 {
        let pv = parent[v]
        let ppv = match[pv]
        match[v] = pv
        match[pv] = v
        v = ppv
      }
    }
    return match
  }
}
