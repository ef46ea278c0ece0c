// The pusher-local debug console.
