;; Batch driver for the eglot recipe of docs/editors.md; run by tests/editors/run.sh (needs $WS).
;; In batch mode eglot-ensure waits for a command loop that never runs: start eglot directly.
(package-initialize)
(require 'eglot)
;; --- recipe from docs/editors.md ---
(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               '((python-mode python-ts-mode)
                 . ("hotswap" "lsp" :initializationOptions (:runOnSave t)))))
;; --- driver ---
(setq eglot-sync-connect 30)
(find-file (expand-file-name "script.py" (getenv "WS")))
(message "major mode: %s" major-mode)
(apply #'eglot (eglot--guess-contact))
(let ((d (+ (float-time) 3))) (while (< (float-time) d) (accept-process-output nil 0.2)))
(message "running script from a terminal-like process")
(start-process "hotswap-run" "*run*" "hotswap" "run" "--workspace" (getenv "WS") "script.py")
(let ((deadline (+ (float-time) 30)))
  (while (and (< (float-time) deadline)
              (not (flymake-diagnostics)))
    (accept-process-output nil 0.5)
    (when (and flymake-mode (not (flymake-running-backends))) (flymake-start))))
(message "flymake-mode %s, running %S, unreported %S" flymake-mode (flymake-running-backends) (bound-and-true-p eglot--unreported-diagnostics))

(message "server: %S" (and (eglot-current-server) (process-command (jsonrpc--process (eglot-current-server)))))
(dolist (d (flymake-diagnostics))
  (message "DIAG line %d: %s [%s]"
           (line-number-at-pos (flymake-diagnostic-beg d))
           (flymake-diagnostic-text d) (flymake-diagnostic-type d)))
(message "n diagnostics: %d" (length (flymake-diagnostics)))
;; --- the doc's command helpers (Emacs 28: define-key / python-mode-map) ---
(defun hotswap-command (command &rest arguments)
  "Run COMMAND of hotswap's language server; return its result."
  (jsonrpc-request (eglot-current-server) :workspace/executeCommand
                   `(:command ,command :arguments ,(vconcat arguments))))
(defun hotswap-run () (interactive) (hotswap-command "hotswap.run" (buffer-file-name)))
(with-eval-after-load 'python
  (define-key python-mode-map (kbd "C-c h r") #'hotswap-run))
(message "status keys: %S" (let ((s (hotswap-command "hotswap.status"))) (seq-take s 4)))
(message "hotswap.run -> %S" (call-interactively (key-binding (kbd "C-c h r"))))
(let ((d (+ (float-time) 10))) (while (< (float-time) d) (accept-process-output nil 0.2)))
(message "after hotswap.run: %S" (mapcar (lambda (d) (list (line-number-at-pos (flymake-diagnostic-beg d)) (flymake-diagnostic-text d))) (flymake-diagnostics)))
(let ((t0 (float-time))) (ignore-errors (eglot-shutdown (eglot-current-server))) (message "shutdown took %.1fs" (- (float-time) t0)))
(kill-emacs 0)
