// GEMM candidates side by side, in C++ (no JS overhead): the addon's gemm (mode 0: its automatic choice, packed for
// K <= 1536, else OpenBLAS panels), OpenBLAS's own threading (mode 1: what PyTorch calls), OpenBLAS with one panel
// per thread written out (mode 3), our packed SIMD GEMM (mode 2). bench/cpu/gemm-rounds.sh alternates them.
// With no arguments: checks the packed GEMM against a float64 reference (odd shapes, all transposes, beta 0/1/0.5).
// Build (repo root):
//   N=packages/kernels-cpu/native; g++ -O3 -std=c++17 -I$N -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//     bench/cpu/gemm-candidates.cc $N/gemm.cc $N/blas.cc $N/pool.cc -lopenblas -pthread -o /tmp/gemm-candidates
// Run: TH=2 /tmp/gemm-candidates M N K mode reps [transA transB]   (CPUT=1: process CPU time instead of wall time)
// Prints the best-of-reps GFLOP/s. Alternate the modes (and bench/cpu/torch_bench.py --part gemm) several times on a
// shared machine and compare the best of each.
#include <cblas.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include "gemm.h"
#include "kernels.h"
#include "pool.h"
extern "C" void openblas_set_num_threads(int);
using namespace std::chrono;
int main(int argc,char**argv){
  ot::setThreads(getenv("TH")?atoi(getenv("TH")):2);
  printf("isa %s\n", ot::packedGemmIsa());
  if(argc<2){
  int shapes[][3]={{1,1,1},{7,5,3},{6,16,1},{13,33,300},{100,37,513},{145,290,257},{300,4100,20},{5,1000,700},{1000,3,70},{13,2100,2048},{50,5000,900}};
  int bad=0;
  for(auto&s:shapes) for(int ta=0;ta<2;ta++) for(int tb=0;tb<2;tb++) for(float beta: {0.f,1.f,0.5f}){
    int M=s[0],N=s[1],K=s[2];
    std::vector<float>A((size_t)M*K),B((size_t)K*N),C((size_t)M*N),R((size_t)M*N);
    for(auto&x:A)x=rand()/(float)RAND_MAX-0.5f; for(auto&x:B)x=rand()/(float)RAND_MAX-0.5f; for(auto&x:C)x=rand()/(float)RAND_MAX-0.5f;
    int lda=ta?M:K, ldb=tb?K:N;
    for(int i=0;i<M;i++)for(int j=0;j<N;j++){double s=0;for(int k=0;k<K;k++){double a=ta?A[(size_t)k*lda+i]:A[(size_t)i*lda+k];double b=tb?B[(size_t)j*ldb+k]:B[(size_t)k*ldb+j];s+=a*b;} R[(size_t)i*N+j]=beta*C[(size_t)i*N+j]+s;}
    ot::packedGemm(A.data(),B.data(),C.data(),M,N,K,ta,tb,beta);
    double e=0,nr=0;for(size_t i=0;i<R.size();i++){e+=(C[i]-R[i])*(C[i]-R[i]);nr+=R[i]*R[i];}
    double rel=std::sqrt(e/(nr+1e-30)); if(rel>1e-5){bad++;printf("BAD %d %d %d ta%d tb%d beta%g rel %g\n",M,N,K,ta,tb,beta,rel);}
  }
  printf("bad=%d\n",bad); return 0;}
  int M=atoi(argv[1]),N=atoi(argv[2]),K=atoi(argv[3]),mode=atoi(argv[4]),reps=atoi(argv[5]); int ta=argc>6?atoi(argv[6]):0, tb=argc>7?atoi(argv[7]):0;
  std::vector<float>A((size_t)M*K),B((size_t)K*N),C((size_t)M*N);
  for(auto&x:A)x=rand()/(float)RAND_MAX-0.5f; for(auto&x:B)x=rand()/(float)RAND_MAX-0.5f;
  double best=1e9;
  for(int r=0;r<reps+1;r++){
    timespec c0,c1; clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&c0); auto t0=steady_clock::now();
    if(mode==0){ ot::blasThreads(1); ot::gemm(A.data(),B.data(),C.data(),M,N,K,ta,tb,0.f);}
    else if(mode==1){ openblas_set_num_threads(getenv("TH")?atoi(getenv("TH")):2); cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,M,N,K,1.f,A.data(),ta?M:K,B.data(),tb?K:N,0.f,C.data(),N);}
    else if(mode==3){ ot::blasThreads(1); int T=ot::numThreads(); int lda=ta?M:K, ldb=tb?K:N; bool byRows=M>=N; int dim=byRows?M:N; int step=((dim+T-1)/T+15)/16*16;
      ot::parallelFor((dim+step-1)/step,[&](long p,int){ int a=(int)p*step, len=std::min(step,dim-a); if(len<=0)return;
        if(byRows){ const float* Ap=ta?A.data()+a:A.data()+(long)a*lda; cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,len,N,K,1.f,Ap,lda,B.data(),ldb,0.f,C.data()+(long)a*N,N);}
        else { const float* Bp=tb?B.data()+(long)a*ldb:B.data()+a; cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,M,len,K,1.f,A.data(),lda,Bp,ldb,0.f,C.data()+a,N);} }); }
    else ot::packedGemm(A.data(),B.data(),C.data(),M,N,K,ta,tb,0.f);
    double dt=duration<double>(steady_clock::now()-t0).count(); clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&c1); if(getenv("CPUT")) dt=(c1.tv_sec-c0.tv_sec)+(c1.tv_nsec-c0.tv_nsec)*1e-9;
    if(r>0&&dt<best)best=dt;
  }
  printf("%dx%dx%d t%d%d mode%d %.1f GFLOP/s\n",M,N,K,ta,tb,mode,2.0*M*N*K/best/1e9);
}
