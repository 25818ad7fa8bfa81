#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An uninitialised float buffer borrowed from `ScratchPool.shared`; its memory goes back to
/// the pool when the buffer is released, so the next call of a fused op (the next training
/// step) reuses already-mapped pages instead of page-faulting fresh ones.
final class ScratchBuffer: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Float>
  let capacity: Int

  fileprivate init(pointer: UnsafeMutablePointer<Float>, capacity: Int) {
    self.pointer = pointer
    self.capacity = capacity
  }

  deinit { ScratchPool.shared.recycle(pointer, capacity: capacity) }
}

/// A small best-fit cache of large float allocations for the fused layers' temporaries and
/// saved activations (GRU gates, chunk buffers). Buffers are handed out uninitialised.
/// At most `maxCachedBytes` are kept; beyond that released memory is freed.
final class ScratchPool: @unchecked Sendable {
  static let shared = ScratchPool(maxCachedBytes: 3 << 30)

  let maxCachedBytes: Int
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
  private var cachedBytes = 0

  init(maxCachedBytes: Int) {
    self.maxCachedBytes = maxCachedBytes
    mutex = .allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
  }

  /// A buffer of at least `count` floats (contents undefined).
  func take(_ count: Int) -> ScratchBuffer {
    let n = max(count, 1)
    pthread_mutex_lock(mutex)
    // Best fit, but don't hand a huge buffer to a tiny request.
    var best = -1
    for (i, f) in free.enumerated() where f.capacity >= n && f.capacity <= 2 * n + (1 << 16) {
      if best < 0 || f.capacity < free[best].capacity { best = i }
    }
    if best >= 0 {
      let f = free.remove(at: best)
      cachedBytes -= f.capacity * MemoryLayout<Float>.stride
      pthread_mutex_unlock(mutex)
      return ScratchBuffer(pointer: f.pointer, capacity: f.capacity)
    }
    pthread_mutex_unlock(mutex)
    return ScratchBuffer(pointer: .allocate(capacity: n), capacity: n)
  }

  fileprivate func recycle(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
    let bytes = capacity * MemoryLayout<Float>.stride
    pthread_mutex_lock(mutex)
    var evicted: [UnsafeMutablePointer<Float>] = []
    // Keep the newest buffers: evict the oldest until this one fits.
    while cachedBytes + bytes > maxCachedBytes, !free.isEmpty {
      let f = free.removeFirst()
      cachedBytes -= f.capacity * MemoryLayout<Float>.stride
      evicted.append(f.pointer)
    }
    let keep = bytes <= maxCachedBytes
    if keep {
      free.append((pointer, capacity))
      cachedBytes += bytes
    }
    pthread_mutex_unlock(mutex)
    for p in evicted { p.deallocate() }
    if !keep { pointer.deallocate() }
  }

  /// Frees every cached buffer (buffers in use are unaffected).
  func releaseCached() {
    pthread_mutex_lock(mutex)
    let all = free
    free = []
    cachedBytes = 0
    pthread_mutex_unlock(mutex)
    for f in all { f.pointer.deallocate() }
  }

  /// Bytes currently cached (not in use).
  var cachedByteCount: Int {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return cachedBytes
  }
}
