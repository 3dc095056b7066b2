/* probe: prove that AF_VSOCK datagrams flow in the test VM.
 *
 * Binds (VMADDR_CID_ANY, 1234), sends a datagram to (VMADDR_CID_HOST, 1234) and
 * receives it on the same socket.  One "name: ok" / "name: FAIL ..." line per step,
 * then "done: N cases, M failed"; the exit status is the number of failures.
 * Static build: gcc -std=gnu11 -static -O2 -o probe probe.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

static int cases;
static int failed;

static void result(const char *name, int ok, const char *fmt_detail, int err)
{
	cases++;
	if (ok) {
		printf("%s: ok\n", name);
	} else {
		failed++;
		printf("%s: FAIL %s (%s)\n", name, fmt_detail, strerror(err));
	}
	fflush(stdout);
}

int main(void)
{
	struct sockaddr_vm me = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 1234 };
	struct sockaddr_vm dst = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 1234 };
	struct sockaddr_vm from;
	socklen_t len = sizeof(from);
	const char msg[] = "hello vsock";
	char buf[64];
	unsigned int cid = 0;
	ssize_t n;
	int fd, dev;

	dev = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	if (dev >= 0 && ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) == 0)
		printf("info: local cid %u\n", cid);
	else
		printf("info: local cid unavailable (%s)\n", strerror(errno));
	if (dev >= 0)
		close(dev);

	fd = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	result("socket", fd >= 0, "socket(AF_VSOCK, SOCK_DGRAM)", errno);
	if (fd < 0)
		goto out;
	result("bind", bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0, "bind(ANY, 1234)", errno);
	n = sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&dst, sizeof(dst));
	result("sendto", n == (ssize_t)sizeof(msg), "sendto(2, 1234)", errno);
	memset(buf, 0, sizeof(buf));
	n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &len);
	if (n >= 0)
		printf("info: received %zd bytes from (%u, %u)\n", n, from.svm_cid, from.svm_port);
	result("recvfrom", n == (ssize_t)sizeof(msg) && memcmp(buf, msg, sizeof(msg)) == 0,
	       "recvfrom", n < 0 ? errno : 0);
	close(fd);
out:
	printf("done: %d cases, %d failed\n", cases, failed);
	return failed;
}
