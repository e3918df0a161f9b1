{
  "targets": [
    {
      "target_name": "omnitrain_kernels_cpu",
      "sources": ["addon.cc", "blas.cc", "norms.cc", "fused.cc", "loss.cc", "casts.cc", "gemm.cc", "gemm_bf16.cc", "ops.cc", "extra.cc", "attention.cc", "movement.cc", "pool.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "/usr/include/x86_64-linux-gnu/openblas-pthread"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lopenblas", "-pthread"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
