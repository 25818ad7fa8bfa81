// Several processes working as one (data-parallel training, sharded jobs) through MPI, behind
// one seam. Open MPI is loaded at run time with dlopen, as BLAS is: a plain `gvae` needs no
// MPI, and one started by `mpirun` or `srun` finds the library the launcher brought.

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why the process group could not start.
public struct ClusterError: Error, CustomStringConvertible {
  public var message: String
  public var description: String { message }
}

/// The processes of one job: rank 0 of 1 unless started by an MPI launcher. Collective calls
/// must be made by every rank in the same order.
public final class Cluster: @unchecked Sendable {
  public let rank: Int
  public let size: Int
  public var isRoot: Bool { rank == 0 }
  let mpi: OpenMPI?

  /// The job's processes; set by `start()` (one process until then).
  nonisolated(unsafe) public private(set) static var world = Cluster(rank: 0, size: 1, mpi: nil)

  init(rank: Int, size: Int, mpi: OpenMPI?) {
    self.rank = rank
    self.size = size
    self.mpi = mpi
  }

  /// Whether the environment says an MPI launcher started this process (Open MPI's mpirun,
  /// or a PMI/PMIx launcher such as Slurm's srun).
  public static var launchedByMPI: Bool {
    for name in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"] where getenv(name) != nil { return true }
    return false
  }

  /// Joins the MPI job when launched by one (call once, first thing); otherwise stays one
  /// process. `library` overrides the Open MPI library name (libmpi.so.40).
  @discardableResult
  public static func start(library: String? = nil) throws(ClusterError) -> Cluster {
    guard launchedByMPI else { return world }
    let name = library ?? getenv("GVAE_MPI_LIBRARY").map { String(cString: $0) } ?? "libmpi.so.40"
    let mpi = try OpenMPI(library: name)
    var rank: Int32 = 0
    var size: Int32 = 1
    try mpi.check(mpi.commRank(mpi.commWorld, &rank), "MPI_Comm_rank")
    try mpi.check(mpi.commSize(mpi.commWorld, &size), "MPI_Comm_size")
    world = Cluster(rank: Int(rank), size: Int(size), mpi: size > 1 ? mpi : nil)
    if size <= 1 { _ = mpi.finalize() }
    return world
  }

  /// Ends the job's MPI part (every rank, after its last collective call).
  public func finish() {
    if let mpi { _ = mpi.finalize() }
  }

  // MARK: Collectives (no-ops on one process)

  /// Element-wise sum over ranks, in place, on every rank.
  public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int) {
    guard let mpi else { return }
    var start = 0
    while start < count {
      let n = min(count - start, Int(Int32.max))
      mpi.require(mpi.allreduce(OpenMPI.inPlace, p + start, Int32(n), mpi.float, mpi.sum, mpi.commWorld), "MPI_Allreduce")
      start += n
    }
  }

  public func allReduceSum(_ values: inout [Double]) {
    guard let mpi, !values.isEmpty else { return }
    values.withUnsafeMutableBufferPointer { b in
      mpi.require(
        mpi.allreduce(OpenMPI.inPlace, b.baseAddress!, Int32(b.count), mpi.double, mpi.sum, mpi.commWorld),
        "MPI_Allreduce")
    }
  }

  /// A sum over ranks started now and finished by `wait()`: buffers reduce while the caller
  /// computes. The buffer must stay valid and untouched until then.
  public final class PendingSum {
    let mpi: OpenMPI?
    var request: OpaquePointer?
    init(mpi: OpenMPI?, request: OpaquePointer?) {
      self.mpi = mpi
      self.request = request
    }
    public func wait() {
      guard let mpi, request != nil else { return }
      mpi.require(mpi.wait(&request, nil), "MPI_Wait")
      request = nil
    }
  }

  public func startAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int) -> PendingSum {
    guard let mpi else { return PendingSum(mpi: nil, request: nil) }
    precondition(count <= Int(Int32.max), "bucket too large for one reduction")
    var request: OpaquePointer? = nil
    mpi.require(
      mpi.iallreduce(OpenMPI.inPlace, p, Int32(count), mpi.float, mpi.sum, mpi.commWorld, &request),
      "MPI_Iallreduce")
    return PendingSum(mpi: mpi, request: request)
  }

  /// Root's floats to every rank, in place.
  public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) {
    guard let mpi else { return }
    var start = 0
    while start < count {
      let n = min(count - start, Int(Int32.max))
      mpi.require(mpi.bcast(p + start, Int32(n), mpi.float, Int32(root), mpi.commWorld), "MPI_Bcast")
      start += n
    }
  }

  /// Root's bytes, on every rank (the others' `bytes` are ignored).
  public func broadcast(bytes: [UInt8], root: Int = 0) -> [UInt8] {
    guard let mpi else { return bytes }
    var count = [Double(bytes.count)]
    count.withUnsafeMutableBufferPointer { b in
      mpi.require(mpi.bcast(b.baseAddress!, 1, mpi.double, Int32(root), mpi.commWorld), "MPI_Bcast")
    }
    var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
    out.withUnsafeMutableBufferPointer { b in
      var start = 0
      while start < b.count {
        let n = min(b.count - start, Int(Int32.max))
        mpi.require(mpi.bcast(b.baseAddress! + start, Int32(n), mpi.byte, Int32(root), mpi.commWorld), "MPI_Bcast")
        start += n
      }
    }
    return out
  }

  /// Every rank's bytes at `root`, in rank order (empty elsewhere): one broadcast per rank,
  /// simple and deterministic (for outputs, not gradients).
  public func gather(bytes: [UInt8], root: Int = 0) -> [[UInt8]] {
    guard mpi != nil else { return [bytes] }
    var out: [[UInt8]] = []
    for r in 0..<size {
      let b = broadcast(bytes: r == rank ? bytes : [], root: r)
      if rank == root { out.append(b) }
    }
    return out
  }

  /// Every rank's bytes, in rank order, on every rank.
  public func allGather(bytes: [UInt8]) -> [[UInt8]] {
    guard mpi != nil else { return [bytes] }
    return (0..<size).map { r in broadcast(bytes: r == rank ? bytes : [], root: r) }
  }

  /// Every rank's values, in rank order, concatenated on every rank: bit for bit (signed
  /// zeros and NaN payloads included), unlike a sum.
  public func allGather(_ values: [Double]) -> [Double] {
    guard mpi != nil else { return values }
    let bytes = values.withUnsafeBytes { Array($0) }
    return allGather(bytes: bytes).flatMap { b in
      b.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }
  }

  public func allGather(_ values: [Float]) -> [Float] {
    guard mpi != nil else { return values }
    let bytes = values.withUnsafeBytes { Array($0) }
    return allGather(bytes: bytes).flatMap { b in
      b.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
  }

  /// This rank's contiguous share of `0..<count` (ranks in order cover it once).
  public func share(of count: Int) -> Range<Int> {
    (count * rank / size)..<(count * (rank + 1) / size)
  }

  public func barrier() {
    guard let mpi else { return }
    mpi.require(mpi.barrier(mpi.commWorld), "MPI_Barrier")
  }
}

/// The Open MPI entry points and predefined handles (Open MPI's ABI: handles are addresses of
/// global objects, MPI_IN_PLACE is 1).
final class OpenMPI: @unchecked Sendable {
  typealias Handle = UnsafeMutableRawPointer
  let library: String
  let commWorld: Handle
  let float: Handle
  let double: Handle
  let byte: Handle
  let sum: Handle
  static var inPlace: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 1)! }

  let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
  let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
  let allreduce: @convention(c) (UnsafeRawPointer, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle) -> Int32
  let iallreduce:
    @convention(c) (
      UnsafeRawPointer, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle, UnsafeMutablePointer<OpaquePointer?>
    ) -> Int32
  let wait: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutableRawPointer?) -> Int32
  let bcast: @convention(c) (UnsafeMutableRawPointer, Int32, Handle, Int32, Handle) -> Int32
  let barrier: @convention(c) (Handle) -> Int32
  let finalize: @convention(c) () -> Int32

  init(library: String) throws(ClusterError) {
    self.library = library
    // RTLD_GLOBAL: Open MPI's own plugins resolve symbols of libmpi.
    guard let h = dlopen(library, RTLD_NOW | RTLD_GLOBAL) else {
      let why = dlerror().map { String(cString: $0) } ?? "not found"
      throw ClusterError(
        message: "started by an MPI launcher, but the MPI library '\(library)' cannot be loaded (\(why)); "
          + "install Open MPI (Debian: libopenmpi-dev openmpi-bin) or set GVAE_MPI_LIBRARY")
    }
    func symbol(_ name: String) throws(ClusterError) -> UnsafeMutableRawPointer {
      guard let s = dlsym(h, name) else {
        throw ClusterError(message: "'\(library)' has no \(name): gvae needs Open MPI's ABI (libmpi.so.40)")
      }
      return s
    }
    func function<F>(_ name: String, _: F.Type) throws(ClusterError) -> F {
      unsafeBitCast(try symbol(name), to: F.self)
    }
    commWorld = try symbol("ompi_mpi_comm_world")
    float = try symbol("ompi_mpi_float")
    double = try symbol("ompi_mpi_double")
    byte = try symbol("ompi_mpi_byte")
    sum = try symbol("ompi_mpi_op_sum")
    commRank = try function("MPI_Comm_rank", (@convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32).self)
    commSize = try function("MPI_Comm_size", (@convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32).self)
    allreduce = try function(
      "MPI_Allreduce",
      (@convention(c) (UnsafeRawPointer, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle) -> Int32).self)
    iallreduce = try function(
      "MPI_Iallreduce",
      (@convention(c) (
        UnsafeRawPointer, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle, UnsafeMutablePointer<OpaquePointer?>
      ) -> Int32).self)
    wait = try function(
      "MPI_Wait", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutableRawPointer?) -> Int32).self)
    bcast = try function(
      "MPI_Bcast", (@convention(c) (UnsafeMutableRawPointer, Int32, Handle, Int32, Handle) -> Int32).self)
    barrier = try function("MPI_Barrier", (@convention(c) (Handle) -> Int32).self)
    finalize = try function("MPI_Finalize", (@convention(c) () -> Int32).self)
    let initialize = try function(
      "MPI_Init", (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32).self)
    try check(initialize(nil, nil), "MPI_Init")
  }

  func check(_ code: Int32, _ what: String) throws(ClusterError) {
    guard code == 0 else { throw ClusterError(message: "\(what) failed (MPI error \(code))") }
  }

  /// A failed collective leaves the job inconsistent: stop this rank (the launcher stops the rest).
  func require(_ code: Int32, _ what: String) {
    guard code != 0 else { return }
    let m = "gvae: error: \(what) failed (MPI error \(code))\n"
    _ = m.withCString { write(2, $0, strlen($0)) }
    exit(1)
  }
}
