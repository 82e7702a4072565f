/* ring.c: an MPI allreduce and a ring over all ranks, for e2e/jobs_mpi_test.go (TestJobs_MPI).
 *
 * Every rank prints where it runs: its dcos task, its pid and cgroup
 * namespaces, and its cgroup as it sees it (the test compares the
 * namespaces with those of the task's own process); rank 0 then
 * prints "allreduce=S ring=R size=N", where S is the MPI_Allreduce sum of
 * rank+1 over all ranks and R the sum of ranks gathered by a token passed
 * once around the ring 0 -> 1 -> ... -> N-1 -> 0. Both must be N(N+1)/2
 * and N(N-1)/2. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cgroup puts this process's cgroup v2 line ("0::/...") in buf. */
static void cgroup(char *buf, size_t n) {
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512];
	snprintf(buf, n, "-");
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(buf, n, "%s", line);
		}
	fclose(f);
}

/* ns puts the target of /proc/self/ns/NAME (e.g. "pid:[4026532]") in buf. */
static void ns(const char *name, char *buf, size_t n) {
	char path[64];
	snprintf(path, sizeof path, "/proc/self/ns/%s", name);
	ssize_t k = readlink(path, buf, n - 1);
	buf[k < 0 ? 0 : k] = 0;
}

int main(int argc, char **argv) {
	int rank, size;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);

	char cg[512], pidns[64], cgns[64];
	const char *task = getenv("DCOS_TASK_ID");
	cgroup(cg, sizeof cg);
	ns("pid", pidns, sizeof pidns);
	ns("cgroup", cgns, sizeof cgns);
	printf("rank %d of %d: task %s pidns %s cgroupns %s cgroup %s\n", rank, size, task ? task : "-", pidns, cgns, cg);
	fflush(stdout);

	long mine = rank + 1, sum = 0;
	MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);

	long token = 0;
	int next = (rank + 1) % size, prev = (rank + size - 1) % size;
	if (rank == 0) {
		MPI_Send(&token, 1, MPI_LONG, next, 0, MPI_COMM_WORLD);
		MPI_Recv(&token, 1, MPI_LONG, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	} else {
		MPI_Recv(&token, 1, MPI_LONG, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		token += rank;
		MPI_Send(&token, 1, MPI_LONG, next, 0, MPI_COMM_WORLD);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0) {
		printf("allreduce=%ld ring=%ld size=%d\n", sum, token, size);
		fflush(stdout);
	}
	MPI_Finalize();
	return 0;
}
