print("gvae-bench")
