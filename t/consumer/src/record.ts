// Logs one callback's arguments as the prove driver reads them back
// (t/lib/WorkerManager/Nginx.pm, callbacks()).
export function record(event: string, id: number | string, n_prev: number | undefined, n_mine: number,
                       n_next: number | undefined): void {
    ngx.log(ngx.WARN, "WMCB ", event, " id=", id, " prev=", tostring(n_prev), " mine=", n_mine,
            " next=", tostring(n_next), " pid=", ngx.worker.pid(), " slot=", tostring(ngx.worker.id()),
            " count=", ngx.worker.count(), " nargs=4 types=", type(id), ",", type(n_prev), ",", type(n_mine), ",",
            type(n_next));
}
