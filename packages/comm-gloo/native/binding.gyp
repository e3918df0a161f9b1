{
  "targets": [
    {
      "target_name": "omnitrain_comm_gloo",
      "sources": ["addon.cc", "group.cc", "tcp_store.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-pthread"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "libraries": ["-lgloo", "-pthread"]
    }
  ]
}
