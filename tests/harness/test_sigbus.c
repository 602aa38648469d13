/* test_sigbus.c — harness/sigbus: a mapped file that shrinks under a
 * reader gives one clear line and exit status 1, not a crash. */
#include "tests/test.h"

#include "harness/cli/cli.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(shrunk_mapping_is_a_message_and_exit_1)
{
    const char *path = tst_path("mapped.bin");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 2 * 4096) == 0);
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        hx_cli_sigbus_install();
        volatile const char *p = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            _exit(3);
        if (ftruncate(fd, 0) != 0)
            _exit(4);
        char c = p[4096]; /* past the new end: SIGBUS */
        (void)c;
        _exit(0);
    }
    close(pipefd[1]);
    char buf[512] = {0};
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    close(pipefd[0]);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status), "child died of signal %d", WTERMSIG(status));
    CHECK_EQ_INT(WEXITSTATUS(status), 1);
    CHECK(n > 0);
    CHECK_CONTAINS(buf, "SIGBUS: a memory-mapped file (the model) shrank");
    close(fd);
}
