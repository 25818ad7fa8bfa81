import CKernels

/// glibc returns every block over 32 MB to the kernel on free and gets it back zeroed, page
/// fault by page fault, on the next allocation: a ZINC training step's [B, T, H] activations
/// then spent ~10% of the step in the kernel clearing pages. Raising the mmap and trim
/// thresholds keeps those blocks in the heap for the next step.
enum MemoryPolicy {
  static let configured: Bool = {
    gvae_keep_large_blocks()
    return true
  }()
}
