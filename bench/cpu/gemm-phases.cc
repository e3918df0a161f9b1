// Where a packed float32 GEMM's time goes, per thread: packing B, packing A, macro-kernels, and when each rank
// finished (the rest of the wall time is waiting at the depth blocks' barriers). It includes native/gemm.cc to
// reach its internals and re-runs its loop nest (native/gemm_loops.h) with timers around each phase.
// Build (repo root):
//   N=packages/kernels-cpu/native; g++ -O3 -std=c++17 -I$N bench/cpu/gemm-phases.cc $N/pool.cc -pthread \
//     -o /tmp/gemm-phases
// Run: /tmp/gemm-phases M N K threads   (row-major, no transposes; prints the last 3 of 12 runs)
#include "../../packages/kernels-cpu/native/gemm.cc"
#include <chrono>
#include <cstdio>
#include <vector>
using namespace std::chrono;
static double now(){ return duration<double>(steady_clock::now().time_since_epoch()).count(); }
struct Acc{ double pb=0, pa=0, mac=0; int tasks=0; double end=0; };
Acc acc[8];
thread_local int myRank=-1;
int main(int argc,char**argv){
  int T=atoi(argv[4]); ot::setThreads(T);
  int M=atoi(argv[1]),N=atoi(argv[2]),K=atoi(argv[3]);
  std::vector<float>A((size_t)M*K),B((size_t)K*N),C((size_t)M*N);
  for(auto&x:A)x=rand()/(float)RAND_MAX-0.5f; for(auto&x:B)x=rand()/(float)RAND_MAX-0.5f;
  ot::Args g{A.data(),B.data(),C.data(),M,N,K,K,N,N,false,false,0.f};
  constexpr int NR=16;
  for(int it=0;it<12;it++){
    for(auto&a:acc)a=Acc();
    const ot::Blocking bl = ot::blocking(g.K);
    const size_t bSize = (size_t)bl.kcMax * ot::gemmColumnBlock(g.N, NR, bl.ncMax);
    float* B0 = ot::tlsB.get(2 * bSize);
    float* Bp[2] = {B0, B0 + bSize};
    std::atomic<int> ranks{0};
    double t0=now();
    ot::packedGemmLoops(g.M, g.N, g.K, ot::MR, NR, bl.mcMax, bl.kcMax, bl.ncMax,
      [&](int buf, int p0, int kc, int j0, int ja, int jb) { if(myRank<0) myRank=ranks++; double s=now(); ot::packB<NR>(g, p0, kc, j0, ja, jb, Bp[buf]); acc[myRank].pb+=now()-s; },
      [&](int buf, int i0, int m, int p0, int kc, int j0, int ja, int jb) {
        double s=now();
        float* Ap = ot::tlsA.get((size_t)bl.mcMax * bl.kcMax);
        ot::packA(g, i0, m, p0, kc, Ap);
        double s2=now();
        ot::macro<ot::Avx2>(g, Ap, Bp[buf], i0, m, j0, ja, jb, kc, p0 == 0 ? g.beta : 1.0f);
        double e=now(); acc[myRank].pa+=s2-s; acc[myRank].mac+=e-s2; acc[myRank].tasks++; acc[myRank].end=e; });
    double t1=now();
    myRank=-1;
    if(it>=9){ printf("total %.2f ms (%.1f GF/s)\n",(t1-t0)*1e3,2.0*M*N*K/(t1-t0)/1e9);
    for(int r=0;r<T;r++) printf("  r%d packB %.2f packA %.2f macro %.2f (%.1f GF/s) tasks %d end-at %.2f\n",r,acc[r].pb*1e3,acc[r].pa*1e3,acc[r].mac*1e3,2.0*M*N*K/T/acc[r].mac/1e9,acc[r].tasks,(acc[r].end-t0)*1e3);}
  }
}
